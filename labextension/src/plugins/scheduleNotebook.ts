import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';

import { notebookDraft } from '../forms/draft';
import { plannerIcon } from '../icons';
import { notebookParameters } from '../notebook';
import { CommandIDs, EXTENSION_ID, ITaskPlanner } from '../tokens';
import { ITaskPlannerViews } from './views';

/**
 * "Schedule this notebook..." in the file browser's context menu and the notebook toolbar
 * (both declared in schema/schedule-notebook.json): a new task prefilled with a notebook
 * job for that file and the names of its parameters cell.
 */
export const scheduleNotebookPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:schedule-notebook`,
  description: 'Schedule this notebook: a new task with a notebook job for it.',
  autoStart: true,
  requires: [ITaskPlanner, ITaskPlannerViews],
  optional: [INotebookTracker, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    planner: ITaskPlanner,
    views: ITaskPlannerViews,
    notebooks: INotebookTracker | null,
    browser: IDefaultFileBrowser | null
  ): void => {
    const { commands, serviceManager } = app;
    const trans = planner.trans;

    const schedule = async (path: string, content?: any): Promise<void> => {
      try {
        const notebook =
          content ??
          (await serviceManager.contents.get(path, { content: true })).content;
        views.editTask(
          undefined,
          notebookDraft(path, notebookParameters(notebook ?? {}))
        );
      } catch (error) {
        void showErrorMessage(
          trans.__('Cannot read the notebook'),
          error as Error
        );
      }
    };

    const selectedNotebook = (): string | null => {
      const item = browser?.selectedItems().next();
      const model = item && !item.done ? item.value : null;
      return model && model.type === 'notebook' ? model.path : null;
    };

    commands.addCommand(CommandIDs.scheduleNotebook, {
      label: trans.__('Schedule this notebook…'),
      caption: trans.__('Create a task that executes this notebook'),
      icon: args => (args.toolbar ? plannerIcon : undefined),
      isEnabled: () => !!notebooks?.currentWidget,
      execute: async () => {
        const panel = notebooks?.currentWidget;
        if (panel) {
          await panel.context.ready;
          await schedule(panel.context.path, panel.context.model.toJSON());
        }
      }
    });
    commands.addCommand(CommandIDs.scheduleFile, {
      label: trans.__('Schedule this notebook…'),
      caption: trans.__('Create a task that executes this notebook'),
      icon: plannerIcon,
      isVisible: () => selectedNotebook() !== null,
      execute: async () => {
        const path = selectedNotebook();
        if (path) {
          await schedule(path);
        }
      }
    });
  }
};
