import * as React from 'react';

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';

import { TaskListModel } from '../model/taskList';
import { SortKey } from '../model/sorting';
import { Alert, NewTaskButton, StatusBadge, formatTime } from './common';

export interface ITaskListActions {
  openTask(id: number): void;
  newTask(): void;
}

function SortHeader(props: {
  model: TaskListModel;
  sortKey: SortKey;
  label: string;
}) {
  const { model, sortKey, label } = props;
  const active = model.query.sortKey === sortKey;
  const ariaSort = active
    ? model.query.ascending
      ? 'ascending'
      : 'descending'
    : 'none';
  return (
    <th aria-sort={ariaSort} scope="col">
      <button
        className="jp-TaskPlanner-sort"
        onClick={() => void model.sortBy(sortKey)}
      >
        {label}
        <span aria-hidden="true">
          {active ? (model.query.ascending ? ' ▲' : ' ▼') : ''}
        </span>
      </button>
    </th>
  );
}

/** The task list: filters, a sortable page of tasks, the pager. */
export function TaskList(props: {
  model: TaskListModel;
  actions: ITaskListActions;
}) {
  const { model, actions } = props;
  const trans = model.planner.trans;
  const { query } = model;
  const [search, setSearch] = React.useState(query.search);
  return (
    <div className="jp-TaskPlanner-list">
      <div className="jp-TaskPlanner-toolbar" role="search">
        <h2 className="jp-TaskPlanner-title">{trans.__('Tasks')}</h2>
        <input
          className="jp-mod-styled jp-TaskPlanner-search"
          type="search"
          aria-label={trans.__('Search tasks by name')}
          placeholder={trans.__('Search tasks by name')}
          value={search}
          onChange={event => {
            setSearch(event.target.value);
            void model.setQuery({ search: event.target.value });
          }}
        />
        <select
          className="jp-mod-styled"
          aria-label={trans.__('Show tasks')}
          value={query.enabled}
          onChange={event =>
            void model.setQuery({
              enabled: event.target.value as 'all' | 'enabled' | 'disabled'
            })
          }
        >
          <option value="all">{trans.__('All tasks')}</option>
          <option value="enabled">{trans.__('Enabled tasks')}</option>
          <option value="disabled">{trans.__('Disabled tasks')}</option>
        </select>
        {model.isAdmin && (
          <label className="jp-TaskPlanner-check">
            <input
              type="checkbox"
              checked={query.allOwners}
              onChange={event =>
                void model.setQuery({ allOwners: event.target.checked })
              }
            />
            {trans.__("Every owner's tasks")}
          </label>
        )}
        <span className="jp-TaskPlanner-spacer" />
        <button className="jp-mod-styled" onClick={() => void model.refresh()}>
          {trans.__('Refresh')}
        </button>
        <NewTaskButton trans={trans} onClick={() => actions.newTask()} />
      </div>
      <Alert message={model.error} />
      <table className="jp-TaskPlanner-table" aria-busy={model.loading}>
        <caption className="jp-TaskPlanner-srOnly">
          {trans.__('Your tasks; column headers sort all of them.')}
        </caption>
        <thead>
          <tr>
            <SortHeader model={model} sortKey="name" label={trans.__('Name')} />
            <SortHeader
              model={model}
              sortKey="enabled"
              label={trans.__('Enabled')}
            />
            <SortHeader
              model={model}
              sortKey="next"
              label={trans.__('Next start')}
            />
            <SortHeader
              model={model}
              sortKey="last"
              label={trans.__('Last run')}
            />
            {model.isAdmin && (
              <SortHeader
                model={model}
                sortKey="owner"
                label={trans.__('Owner')}
              />
            )}
            <th scope="col">{trans.__('Actions')}</th>
          </tr>
        </thead>
        <tbody>
          {model.rows.map(task => {
            const summary = model.summaries.get(task.id);
            return (
              <tr key={task.id} data-task-id={task.id}>
                <td>
                  <button
                    className="jp-TaskPlanner-link"
                    onClick={() => actions.openTask(task.id)}
                  >
                    {task.name}
                  </button>
                </td>
                <td>
                  <input
                    type="checkbox"
                    className="jp-TaskPlanner-toggle"
                    role="switch"
                    aria-checked={task.enabled}
                    aria-label={trans.__('Enabled: %1', task.name)}
                    checked={task.enabled}
                    onChange={() => void model.toggleEnabled(task)}
                  />
                </td>
                <td>
                  {summary?.nextFire ? formatTime(summary.nextFire) : '—'}
                </td>
                <td>
                  <StatusBadge
                    status={summary?.lastRun?.status}
                    trans={trans}
                  />
                </td>
                {model.isAdmin && <td>{task.owner}</td>}
                <td>
                  <button
                    className="jp-mod-styled"
                    aria-label={trans.__('Run %1 now', task.name)}
                    onClick={() => void model.runNow(task)}
                  >
                    {trans.__('Run now')}
                  </button>
                </td>
              </tr>
            );
          })}
          {!model.loading && !model.rows.length && (
            <tr>
              <td
                colSpan={model.isAdmin ? 6 : 5}
                className="jp-TaskPlanner-empty"
              >
                {trans.__('No tasks here yet. Create one with "New task".')}
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <nav
        className="jp-TaskPlanner-pager"
        aria-label={trans.__('Pages of tasks')}
      >
        <button
          className="jp-mod-styled"
          disabled={query.page === 0}
          onClick={() => void model.setQuery({ page: query.page - 1 })}
        >
          {trans.__('Previous')}
        </button>
        <span aria-live="polite">
          {trans.__(
            'Page %1 of %2 (%3 tasks)',
            query.page + 1,
            model.pageCount,
            model.total
          )}
        </span>
        <button
          className="jp-mod-styled"
          disabled={query.page + 1 >= model.pageCount}
          onClick={() => void model.setQuery({ page: query.page + 1 })}
        >
          {trans.__('Next')}
        </button>
      </nav>
    </div>
  );
}

/** The task list in Lab's main area. */
export class TaskListWidget extends ReactWidget {
  constructor(
    readonly model: TaskListModel,
    private actions: ITaskListActions
  ) {
    super();
    this.addClass('jp-TaskPlanner');
    void model.refresh();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <TaskList model={this.model} actions={this.actions} />}
      </UseSignal>
    );
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
