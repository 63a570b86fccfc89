import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  MainAreaWidget,
  WidgetTracker,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Token } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { ITaskDraft } from '../forms/draft';
import { plannerIcon } from '../icons';
import { TaskDetailModel } from '../model/taskDetail';
import { TaskEditorModel } from '../model/taskEditor';
import { TaskListModel } from '../model/taskList';
import { copyResult } from '../results';
import { CommandIDs, EXTENSION_ID, ITaskPlanner } from '../tokens';
import { TaskDetailWidget } from '../views/TaskDetailView';
import { TaskEditorWidget } from '../views/TaskEditorView';
import { TaskListWidget } from '../views/TaskListView';

/** Opens the Task Planner's main-area views. */
export interface ITaskPlannerViews {
  openList(): void;
  openTask(id: number): void;
  /** The editor of a stored task, or of a new one (optionally prefilled with `draft`). */
  editTask(id?: number, draft?: ITaskDraft): void;
}

export const ITaskPlannerViews = new Token<ITaskPlannerViews>(
  'jupyter-taskplanner:ITaskPlannerViews',
  "Opens the Task Planner's task list, task pages and task editors."
);

/** The main-area views (task list, task page, task editor) and their commands. */
export const viewsPlugin: JupyterFrontEndPlugin<ITaskPlannerViews> = {
  id: `${EXTENSION_ID}:views`,
  description:
    'The task list, task pages and the task editor, with their commands.',
  autoStart: true,
  requires: [ITaskPlanner],
  optional: [ITranslator, IDocumentManager, ILayoutRestorer],
  provides: ITaskPlannerViews,
  activate: (
    app: JupyterFrontEnd,
    planner: ITaskPlanner,
    translator: ITranslator | null,
    docManager: IDocumentManager | null,
    restorer: ILayoutRestorer | null
  ): ITaskPlannerViews => {
    const { commands, shell } = app;
    const trans = planner.trans;
    // The open views by id; only the task list is restored when Lab reloads.
    const open = new Map<string, MainAreaWidget<Widget>>();
    const listTracker = new WidgetTracker<MainAreaWidget<Widget>>({
      namespace: 'taskplanner'
    });
    if (restorer) {
      void restorer.restore(listTracker, {
        command: CommandIDs.openList,
        name: () => 'list'
      });
    }

    const show = (
      id: string,
      make: () => Widget,
      label: string,
      restored = false
    ): void => {
      if (open.has(id)) {
        shell.activateById(id);
        return;
      }
      const content = make();
      content.title.label = label;
      content.title.icon = plannerIcon;
      const widget = new MainAreaWidget({ content });
      widget.id = id;
      widget.title.closable = true;
      open.set(id, widget);
      widget.disposed.connect(() => open.delete(id));
      if (restored) {
        void listTracker.add(widget);
      }
      shell.add(widget, 'main');
      shell.activateById(id);
    };

    const close = (id: string): void => open.get(id)?.dispose();

    const openFile = async (runId: number, path: string): Promise<void> => {
      try {
        const copy = await copyResult(
          planner.api,
          app.serviceManager.contents,
          planner.preferences.resultsFolder,
          runId,
          path
        );
        if (docManager) {
          docManager.openOrReveal(copy);
        } else {
          await commands.execute('docmanager:open', { path: copy });
        }
      } catch (error) {
        void showErrorMessage(
          trans.__('Cannot open the result file'),
          error as Error
        );
      }
    };

    const views: ITaskPlannerViews = {
      openList: () =>
        show(
          'jupyter-taskplanner-list',
          () =>
            new TaskListWidget(new TaskListModel(planner), {
              openTask: id => views.openTask(id),
              newTask: () => views.editTask()
            }),
          trans.__('Task Planner'),
          true
        ),
      openTask: id =>
        show(
          `jupyter-taskplanner-task-${id}`,
          () =>
            new TaskDetailWidget(new TaskDetailModel(planner, id), {
              edit: taskId => views.editTask(taskId),
              openFile: (runId, path) => void openFile(runId, path)
            }),
          trans.__('Task %1', id)
        ),
      editTask: (id, draft) => {
        const widgetId =
          id === undefined
            ? `jupyter-taskplanner-new-${Date.now()}`
            : `jupyter-taskplanner-edit-${id}`;
        show(
          widgetId,
          () => {
            const model = new TaskEditorModel(planner, draft);
            void model.load(id);
            return new TaskEditorWidget(model, translator ?? nullTranslator, {
              saved: taskId => {
                close(widgetId);
                views.openTask(taskId);
              },
              cancel: () => close(widgetId)
            });
          },
          id === undefined ? trans.__('New task') : trans.__('Edit task %1', id)
        );
      }
    };

    const taskId = (args: any): number | null =>
      typeof args.id === 'number'
        ? args.id
        : Number.isInteger(Number(args.id))
          ? Number(args.id)
          : null;

    commands.addCommand(CommandIDs.openList, {
      label: trans.__('Task Planner'),
      caption: trans.__('Open the Task Planner: your tasks and their runs'),
      icon: args =>
        args.isLauncher || args.isPalette ? plannerIcon : undefined,
      execute: () => views.openList()
    });
    commands.addCommand(CommandIDs.newTask, {
      label: trans.__('New Task'),
      caption: trans.__('Create a task in the Task Planner'),
      execute: () => views.editTask()
    });
    commands.addCommand(CommandIDs.openTask, {
      label: args =>
        args.id ? trans.__('Open Task %1', args.id) : trans.__('Open Task'),
      execute: args => {
        const id = taskId(args);
        if (id !== null) {
          views.openTask(id);
        }
      }
    });
    commands.addCommand(CommandIDs.editTask, {
      label: trans.__('Edit Task'),
      execute: args => {
        const id = taskId(args);
        views.editTask(id ?? undefined);
      }
    });
    commands.addCommand(CommandIDs.runTask, {
      label: args =>
        args.id
          ? trans.__('Run Task %1 Now', args.id)
          : trans.__('Run Task Now'),
      execute: async args => {
        const id = taskId(args);
        if (id !== null) {
          await planner.api.runTask(id);
          views.openTask(id);
        }
      }
    });
    return views;
  }
};
