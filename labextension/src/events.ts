/**
 * The planner's run events from Jupyter Server's event bus (the `/api/events/subscribe`
 * websocket; schema jupyter_taskplanner/events/run.yaml), and what the views keep of them.
 */
import { IProgress, RunStatus } from './types';

export const RUN_EVENT_SCHEMA =
  'https://events.jupyter.org/jupyter_taskplanner/run/v1';

export interface IRunEvent {
  action: 'started' | 'progress' | 'finished';
  run_id: number;
  task_id: number | null;
  owner: string;
  status: RunStatus;
  trigger?: string;
  step_id?: number;
  done?: number;
  total?: number;
  message?: string;
}

const ACTIONS = ['started', 'progress', 'finished'];

/** A run event from an event bus emission, or null for any other event. */
export function asRunEvent(
  emission: { [key: string]: any } | null | undefined
): IRunEvent | null {
  if (!emission || emission.schema_id !== RUN_EVENT_SCHEMA) {
    return null;
  }
  const { action, run_id, task_id, owner, status } = emission;
  if (
    !ACTIONS.includes(action) ||
    typeof run_id !== 'number' ||
    !(typeof task_id === 'number' || task_id === null) ||
    typeof owner !== 'string' ||
    typeof status !== 'string'
  ) {
    return null;
  }
  const event: IRunEvent = {
    action,
    run_id,
    task_id,
    owner,
    status: status as RunStatus
  };
  for (const key of ['trigger', 'message'] as const) {
    if (typeof emission[key] === 'string') {
      event[key] = emission[key];
    }
  }
  for (const key of ['step_id', 'done', 'total'] as const) {
    if (typeof emission[key] === 'number') {
      event[key] = emission[key];
    }
  }
  return event;
}

/** What is known of a run from its events: its status and each step's progress. */
export interface ILiveRun {
  runId: number;
  taskId: number | null;
  status: RunStatus;
  steps: { [stepId: number]: IProgress };
  /** The step that reported last. */
  lastStep: number | null;
}

/**
 * The live state of runs, from their events: a run appears when it starts (or first
 * reports progress), follows its steps' progress and keeps its final status when it ends.
 */
export class LiveRuns {
  private runs = new Map<number, ILiveRun>();

  /** Take in one event; returns the run's state after it. */
  apply(event: IRunEvent): ILiveRun {
    const run: ILiveRun = this.runs.get(event.run_id) ?? {
      runId: event.run_id,
      taskId: event.task_id,
      status: event.status,
      steps: {},
      lastStep: null
    };
    run.status = event.status;
    if (event.action === 'progress' && event.step_id !== undefined) {
      run.steps = {
        ...run.steps,
        [event.step_id]: {
          done: event.done ?? 0,
          total: event.total ?? 0,
          message: event.message ?? ''
        }
      };
      run.lastStep = event.step_id;
    }
    this.runs.set(event.run_id, { ...run });
    return this.runs.get(event.run_id)!;
  }

  get(runId: number): ILiveRun | undefined {
    return this.runs.get(runId);
  }

  /** Runs that have not ended, of one task or of all. */
  active(taskId?: number): ILiveRun[] {
    return [...this.runs.values()].filter(
      run =>
        (run.status === 'queued' || run.status === 'running') &&
        (taskId === undefined || run.taskId === taskId)
    );
  }

  /** Forget ended runs beyond the newest `keep`, so a long session does not grow. */
  prune(keep = 200): void {
    const ended = [...this.runs.values()]
      .filter(run => run.status !== 'queued' && run.status !== 'running')
      .sort((a, b) => b.runId - a.runId);
    for (const run of ended.slice(keep)) {
      this.runs.delete(run.runId);
    }
  }
}

/** A progress as a fraction 0..1 (0 when the total is not known). */
export function fraction(progress: IProgress | undefined): number {
  if (!progress || !progress.total) {
    return 0;
  }
  return Math.min(1, Math.max(0, progress.done / progress.total));
}
