import * as React from 'react';

import { TranslationBundle } from '@jupyterlab/translation';

import { fraction } from '../events';
import { IProgress } from '../types';

/** A run or step status as a colored badge (colors from the Lab theme). */
export function StatusBadge(props: {
  status: string | null | undefined;
  trans: TranslationBundle;
}) {
  const { status, trans } = props;
  if (!status) {
    return (
      <span className="jp-TaskPlanner-status jp-mod-none">
        {trans.__('never run')}
      </span>
    );
  }
  return (
    <span className={`jp-TaskPlanner-status jp-mod-${status}`}>
      {statusLabel(status, trans)}
    </span>
  );
}

export function statusLabel(status: string, trans: TranslationBundle): string {
  const labels: { [status: string]: string } = {
    queued: trans.__('queued'),
    running: trans.__('running'),
    succeeded: trans.__('succeeded'),
    failed: trans.__('failed'),
    cancelled: trans.__('cancelled'),
    timed_out: trans.__('timed out'),
    interrupted: trans.__('interrupted'),
    skipped: trans.__('skipped')
  };
  return labels[status] ?? status;
}

/** A job's progress (a notebook's cells) as a bar with its text. */
export function ProgressBar(props: { progress: IProgress; label: string }) {
  const { progress, label } = props;
  return (
    <div className="jp-TaskPlanner-progress">
      <progress
        max={progress.total || 1}
        value={progress.done}
        aria-label={label}
        aria-valuetext={progress.message}
      />
      <span className="jp-TaskPlanner-progressText">
        {progress.message || `${Math.round(fraction(progress) * 100)}%`}
      </span>
    </div>
  );
}

/** A time of the API (ISO 8601) as the viewer reads it, in `timeZone` when given. */
export function formatTime(
  iso: string | null | undefined,
  timeZone?: string
): string {
  if (!iso) {
    return '';
  }
  try {
    return new Date(iso).toLocaleString(undefined, {
      timeZone,
      dateStyle: 'medium',
      timeStyle: 'short'
    });
  } catch {
    return iso;
  }
}

/** A message for the whole view (an error the server sent), announced to screen readers. */
export function Alert(props: { message: string | null }) {
  return props.message ? (
    <div className="jp-TaskPlanner-alert" role="alert">
      {props.message}
    </div>
  ) : null;
}

/** The accept-styled "New task" button ending the sidebar's and the task list's button rows. */
export function NewTaskButton(props: {
  trans: TranslationBundle;
  onClick: () => void;
}) {
  return (
    <button className="jp-mod-styled jp-mod-accept" onClick={props.onClick}>
      {props.trans.__('New task')}
    </button>
  );
}
