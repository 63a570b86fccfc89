import * as React from 'react';

import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';

import { formatDuration } from '../chart';
import { TaskDetailModel } from '../model/taskDetail';
import { opensInLab } from '../results';
import { ACTIVE, INextFires, IRunDetail, IStep, STOPPED } from '../types';
import { Alert, ProgressBar, StatusBadge, formatTime } from './common';
import { RunChart } from './RunChart';

export interface ITaskDetailActions {
  edit(taskId: number): void;
  openFile(runId: number, path: string): void;
}

/** A run's or step's error: a failure in the error style, a stop's reason plainly. */
function ErrorText(props: { status: string; text: string }) {
  const stopped = STOPPED.includes(props.status);
  return (
    <pre
      className={stopped ? 'jp-TaskPlanner-reason' : 'jp-TaskPlanner-error'}
      data-status={props.status}
    >
      {props.text}
    </pre>
  );
}

function duration(start: string | null, end: string | null): string {
  if (!start || !end) {
    return '';
  }
  return formatDuration((Date.parse(end) - Date.parse(start)) / 1000);
}

/** Whether two ISO times of one instant have the same UTC offset. */
function sameOffset(a: string, b: string): boolean {
  const offset = (iso: string) => iso.match(/([+-]\d\d:\d\d|Z)$/)?.[1] ?? '';
  return offset(a) === offset(b);
}

/** The next fire times in the server's time and, where it differs, the viewer's. */
function NextFires(props: { model: TaskDetailModel; next: INextFires }) {
  const { model, next } = props;
  const trans = model.planner.trans;
  // The viewer's time only where it reads differently (another zone, not another name).
  const viewer =
    model.planner.preferences.showViewerTime &&
    next.viewer_timezone &&
    next.next.some(
      fire =>
        fire.viewer_time && !sameOffset(fire.viewer_time, fire.server_time)
    )
      ? next.viewer_timezone
      : null;
  if (!next.next.length) {
    return (
      <p className="jp-TaskPlanner-help">
        {trans.__('No timed trigger: nothing scheduled.')}
      </p>
    );
  }
  return (
    <table className="jp-TaskPlanner-table jp-TaskPlanner-next">
      <thead>
        <tr>
          <th scope="col">
            {trans.__('Server time (%1)', next.server_timezone)}
          </th>
          {viewer && <th scope="col">{trans.__('Your time (%1)', viewer)}</th>}
          <th scope="col">{trans.__('Trigger')}</th>
        </tr>
      </thead>
      <tbody>
        {next.next.map(fire => (
          <tr key={`${fire.trigger}-${fire.time}`}>
            <td>
              <time dateTime={fire.server_time}>
                {formatTime(fire.server_time, next.server_timezone)}
              </time>
            </td>
            {viewer && (
              <td>
                <time dateTime={fire.viewer_time}>
                  {formatTime(fire.viewer_time, viewer)}
                </time>
              </td>
            )}
            <td>
              {fire.type} #{fire.trigger + 1}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function StepRow(props: {
  model: TaskDetailModel;
  run: IRunDetail;
  step: IStep;
  actions: ITaskDetailActions;
}) {
  const { model, run, step, actions } = props;
  const trans = model.planner.trans;
  const files = step.results.filter(
    result => result.flavor === 'file' && result.value
  );
  const texts = step.results.filter(
    result => result.flavor === 'text' && result.value
  );
  return (
    <li
      className="jp-TaskPlanner-step"
      data-step-id={step.id}
      data-status={step.status}
    >
      <div className="jp-TaskPlanner-stepHead">
        <StatusBadge status={step.status} trans={trans} />
        <strong>
          {step.kind} {step.name}
        </strong>
        <code>{step.type}</code>
        {step.set_index !== null && (
          <span>{trans.__('set %1', step.set_index + 1)}</span>
        )}
        {step.attempt > 1 && (
          <span>{trans.__('attempt %1', step.attempt)}</span>
        )}
        <span className="jp-TaskPlanner-help">
          {duration(step.started, step.finished)}
        </span>
      </div>
      {step.progress && step.status === 'running' && (
        <ProgressBar
          progress={step.progress}
          label={trans.__('Progress of %1', step.name)}
        />
      )}
      {step.error && <ErrorText status={step.status} text={step.error} />}
      {texts.map((result, i) => (
        <p key={i} className="jp-TaskPlanner-result">
          {result.value}
        </p>
      ))}
      {files.length > 0 && (
        <ul
          className="jp-TaskPlanner-files"
          aria-label={trans.__('Result files')}
        >
          {files.map(result => {
            const path = result.value!;
            const name = path.split('/').pop();
            return (
              <li key={path}>
                {opensInLab(path) && (
                  <button
                    className="jp-mod-styled"
                    aria-label={trans.__('Open %1 in JupyterLab', name)}
                    onClick={() => actions.openFile(run.id, path)}
                  >
                    {trans.__('Open')}
                  </button>
                )}
                <a
                  href={model.planner.api.fileURL(run.id, path)}
                  download={name}
                >
                  {name}
                </a>
                {!result.valid && (
                  <span className="jp-TaskPlanner-help">
                    {' '}
                    {trans.__('(not valid)')}
                  </span>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </li>
  );
}

function RunView(props: {
  model: TaskDetailModel;
  run: IRunDetail;
  actions: ITaskDetailActions;
}) {
  const { model, run, actions } = props;
  const trans = model.planner.trans;
  return (
    <section
      className="jp-TaskPlanner-run"
      aria-labelledby="tp-run"
      data-run-id={run.id}
      data-status={run.status}
    >
      <h3 id="tp-run">
        {trans.__('Run %1', run.id)}{' '}
        <span aria-live="polite">
          <StatusBadge status={run.status} trans={trans} />
        </span>
      </h3>
      <p className="jp-TaskPlanner-help">
        {trans.__(
          'Started %1 by %2 (%3)',
          formatTime(run.started ?? run.created),
          run.started_by,
          run.trigger
        )}
        {run.finished && ` · ${duration(run.started, run.finished)}`}
      </p>
      {ACTIVE.includes(run.status) && (
        <button
          className="jp-mod-styled jp-mod-warn"
          onClick={() => void model.cancel(run.id)}
        >
          {trans.__('Cancel run')}
        </button>
      )}
      {run.error && <ErrorText status={run.status} text={run.error} />}
      <ol className="jp-TaskPlanner-steps" aria-label={trans.__('Steps')}>
        {run.steps.map(step => (
          <StepRow
            key={step.id}
            model={model}
            run={run}
            step={step}
            actions={actions}
          />
        ))}
      </ol>
      {model.hasMoreSteps && (
        <p className="jp-TaskPlanner-help">
          {trans.__('%1 of %2 steps', run.steps.length, run.steps_total)}{' '}
          <button
            className="jp-mod-styled"
            onClick={() => void model.loadMoreSteps()}
          >
            {trans.__('Show more steps')}
          </button>
        </p>
      )}
      <h4 id="tp-log">{trans.__('Log')}</h4>
      <pre className="jp-TaskPlanner-log" tabIndex={0} aria-labelledby="tp-log">
        {model.log || trans.__('(no output)')}
      </pre>
      <button
        className="jp-mod-styled"
        onClick={() => void model.select(run.id)}
      >
        {trans.__('Reload log')}
      </button>
    </section>
  );
}

/** One task: next fire times, run now, the run history, one run's steps and log. */
export function TaskDetail(props: {
  model: TaskDetailModel;
  actions: ITaskDetailActions;
}) {
  const { model, actions } = props;
  const trans = model.planner.trans;
  const { task } = model;
  if (!task) {
    return (
      <div className="jp-TaskPlanner-detail">
        <Alert message={model.error} />
        {!model.error && <p>{trans.__('Loading…')}</p>}
      </div>
    );
  }
  return (
    <div className="jp-TaskPlanner-detail">
      <div className="jp-TaskPlanner-toolbar">
        <h2 className="jp-TaskPlanner-title">{task.name}</h2>
        <label className="jp-TaskPlanner-check">
          <input
            type="checkbox"
            role="switch"
            aria-checked={task.enabled}
            checked={task.enabled}
            onChange={() => void model.setEnabled(!task.enabled)}
          />
          {trans.__('Enabled')}
        </label>
        <span className="jp-TaskPlanner-spacer" />
        <button className="jp-mod-styled" onClick={() => void model.refresh()}>
          {trans.__('Refresh')}
        </button>
        <button className="jp-mod-styled" onClick={() => actions.edit(task.id)}>
          {trans.__('Edit')}
        </button>
        <button
          className="jp-mod-styled jp-mod-accept"
          onClick={() => void model.runNow()}
        >
          {trans.__('Run now')}
        </button>
      </div>
      <Alert message={model.error} />
      {task.description && <p>{task.description}</p>}
      <div className="jp-TaskPlanner-columns">
        <section aria-labelledby="tp-next">
          <h3 id="tp-next">{trans.__('Next starts')}</h3>
          {model.next && <NextFires model={model} next={model.next} />}
          {model.next && !model.next.enabled && (
            <p className="jp-TaskPlanner-help">
              {trans.__('The task is disabled: these will not start it.')}
            </p>
          )}
        </section>
        <section aria-labelledby="tp-chart">
          <h3 id="tp-chart">{trans.__('Recent runs')}</h3>
          <RunChart
            runs={model.runs}
            count={model.planner.preferences.chartRuns}
            trans={trans}
            onSelect={id => void model.select(id)}
          />
        </section>
      </div>
      <section aria-labelledby="tp-history">
        <h3 id="tp-history">{trans.__('Run history')}</h3>
        <table className="jp-TaskPlanner-table jp-TaskPlanner-runs">
          <thead>
            <tr>
              <th scope="col">{trans.__('Run')}</th>
              <th scope="col">{trans.__('Status')}</th>
              <th scope="col">{trans.__('Started')}</th>
              <th scope="col">{trans.__('Duration')}</th>
              <th scope="col">{trans.__('Started by')}</th>
            </tr>
          </thead>
          <tbody>
            {model.runs.map(run => (
              <tr
                key={run.id}
                className={model.run?.id === run.id ? 'jp-mod-selected' : ''}
                aria-current={model.run?.id === run.id ? true : undefined}
              >
                <td>
                  <button
                    className="jp-TaskPlanner-link"
                    onClick={() => void model.select(run.id)}
                  >
                    {trans.__('Run %1', run.id)}
                  </button>
                </td>
                <td>
                  <StatusBadge status={run.status} trans={trans} />
                </td>
                <td>{formatTime(run.started ?? run.created)}</td>
                <td>{duration(run.started, run.finished)}</td>
                <td>
                  {run.started_by} ({run.trigger})
                </td>
              </tr>
            ))}
            {!model.runs.length && (
              <tr>
                <td colSpan={5} className="jp-TaskPlanner-empty">
                  {trans.__('Not run yet.')}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
      {model.run && <RunView model={model} run={model.run} actions={actions} />}
    </div>
  );
}

/** A task's page in Lab's main area. */
export class TaskDetailWidget extends ReactWidget {
  constructor(
    readonly model: TaskDetailModel,
    private actions: ITaskDetailActions
  ) {
    super();
    this.addClass('jp-TaskPlanner');
    model.changed.connect(() => {
      if (model.task) {
        this.title.label = model.task.name; // the tab shows the task's name
      }
    });
    void model.refresh();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <TaskDetail model={this.model} actions={this.actions} />}
      </UseSignal>
    );
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
