import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { CommandIDs, EXTENSION_ID, ITaskPlanner } from '../tokens';
import { ITaskPlannerViews } from './views';

/** The Task Planner's commands in the command palette. */
export const palettePlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:palette`,
  description: "Adds the Task Planner's commands to the command palette.",
  autoStart: true,
  requires: [ICommandPalette, ITaskPlanner, ITaskPlannerViews],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette,
    planner: ITaskPlanner
  ): void => {
    const category = planner.trans.__('Task Planner');
    for (const command of [
      CommandIDs.openList,
      CommandIDs.newTask,
      CommandIDs.scheduleNotebook
    ]) {
      palette.addItem({ command, category });
    }
  }
};
