import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ILauncher } from '@jupyterlab/launcher';

import { CommandIDs, EXTENSION_ID } from '../tokens';
import { ITaskPlannerViews } from './views';

/** A "Task Planner" item in the launcher. */
export const launcherPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:launcher`,
  description: 'Adds the Task Planner to the launcher.',
  autoStart: true,
  requires: [ILauncher, ITaskPlannerViews],
  activate: (app: JupyterFrontEnd, launcher: ILauncher): void => {
    launcher.add({ command: CommandIDs.openList, category: 'Other', rank: 1 });
  }
};
