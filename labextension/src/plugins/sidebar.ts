import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { TaskListModel } from '../model/taskList';
import { EXTENSION_ID, ITaskPlanner } from '../tokens';
import { SidebarWidget } from '../views/SidebarView';
import { ITaskPlannerViews } from './views';

/** The Task Planner panel in the left sidebar. */
export const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:sidebar`,
  description:
    'The Task Planner panel in the left sidebar: runs in progress and tasks.',
  autoStart: true,
  requires: [ITaskPlanner, ITaskPlannerViews],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    planner: ITaskPlanner,
    views: ITaskPlannerViews,
    restorer: ILayoutRestorer | null
  ): void => {
    const panel = new SidebarWidget(new TaskListModel(planner), {
      openList: () => views.openList(),
      newTask: () => views.editTask(),
      openTask: id => views.openTask(id)
    });
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, panel.id);
  }
};
