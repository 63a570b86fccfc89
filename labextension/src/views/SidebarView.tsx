import * as React from 'react';

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';

import { fraction } from '../events';
import { TaskListModel } from '../model/taskList';
import { plannerIcon } from '../icons';
import { NewTaskButton, ProgressBar, StatusBadge } from './common';

export interface ISidebarActions {
  openList(): void;
  newTask(): void;
  openTask(id: number): void;
}

/** The left sidebar panel: runs in progress, the first tasks, shortcuts to the views. */
export function Sidebar(props: {
  model: TaskListModel;
  actions: ISidebarActions;
}) {
  const { model, actions } = props;
  const { trans, liveRuns } = model.planner;
  const active = liveRuns.active();
  const names = new Map(model.tasks.map(task => [task.id, task.name]));
  return (
    <div className="jp-TaskPlanner-sidebar">
      <h2 className="jp-TaskPlanner-title">{trans.__('Task Planner')}</h2>
      <div className="jp-TaskPlanner-buttons">
        <button className="jp-mod-styled" onClick={() => actions.openList()}>
          {trans.__('All tasks')}
        </button>
        <NewTaskButton trans={trans} onClick={() => actions.newTask()} />
      </div>
      <section aria-labelledby="tp-side-running">
        <h3 id="tp-side-running">{trans.__('Running now')}</h3>
        {active.length === 0 && (
          <p className="jp-TaskPlanner-help">
            {trans.__('Nothing is running.')}
          </p>
        )}
        <ul className="jp-TaskPlanner-sideList">
          {active.map(run => {
            const step =
              run.lastStep !== null ? run.steps[run.lastStep] : undefined;
            const name =
              (run.taskId !== null && names.get(run.taskId)) ||
              trans.__('Run %1', run.runId);
            return (
              <li key={run.runId} data-run-id={run.runId}>
                {run.taskId !== null ? (
                  <button
                    className="jp-TaskPlanner-link"
                    onClick={() => actions.openTask(run.taskId!)}
                  >
                    {name}
                  </button>
                ) : (
                  <span>{name}</span>
                )}
                {step ? (
                  <ProgressBar
                    progress={step}
                    label={trans.__('Progress of %1', name)}
                  />
                ) : (
                  <StatusBadge status={run.status} trans={trans} />
                )}
                <span className="jp-TaskPlanner-srOnly">
                  {Math.round(fraction(step) * 100)}%
                </span>
              </li>
            );
          })}
        </ul>
      </section>
      <section aria-labelledby="tp-side-tasks">
        <h3 id="tp-side-tasks">{trans.__('Tasks')}</h3>
        <ul className="jp-TaskPlanner-sideList">
          {model.tasks.map(task => (
            <li key={task.id} data-task-id={task.id}>
              <button
                className="jp-TaskPlanner-link"
                onClick={() => actions.openTask(task.id)}
              >
                {task.name}
              </button>
              <StatusBadge
                status={model.summaries.get(task.id)?.lastRun?.status}
                trans={trans}
              />
            </li>
          ))}
        </ul>
        {model.total > model.tasks.length && (
          <button
            className="jp-TaskPlanner-link"
            onClick={() => actions.openList()}
          >
            {trans.__('%1 more…', model.total - model.tasks.length)}
          </button>
        )}
      </section>
    </div>
  );
}

/** The sidebar panel's widget; its task list follows run events. */
export class SidebarWidget extends ReactWidget {
  constructor(
    readonly model: TaskListModel,
    private actions: ISidebarActions
  ) {
    super();
    this.id = 'jupyter-taskplanner-sidebar';
    this.title.icon = plannerIcon;
    this.title.caption = model.planner.trans.__('Task Planner');
    this.addClass('jp-TaskPlanner');
    model.planner.runEvent.connect(() => this.update(), this);
    void model.refresh();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <Sidebar model={this.model} actions={this.actions} />}
      </UseSignal>
    );
  }
}
