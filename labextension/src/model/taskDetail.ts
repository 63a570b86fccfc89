import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { IRunEvent } from '../events';
import { ITaskPlanner } from '../tokens';
import { ACTIVE, INextFires, IRun, IRunDetail, ITask } from '../types';

/** How long log reloads wait after a progress event, so a fast notebook reloads rarely. */
const LOG_RELOAD_DELAY = 1500;

/** How many of a run's steps the page shows at first and adds each time it is asked. */
export const STEPS_PAGE = 100;

/**
 * One task's page: the task, its next fire times, its recent runs, the selected run's steps
 * and log; live through run events (progress is applied as it comes, no polling).
 */
export class TaskDetailModel implements IDisposable {
  constructor(
    readonly planner: ITaskPlanner,
    readonly taskId: number
  ) {
    planner.runEvent.connect(this.onRunEvent, this);
  }

  task: ITask | null = null;
  next: INextFires | null = null;
  runs: IRun[] = [];
  run: IRunDetail | null = null;
  log = '';
  error: string | null = null;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  async refresh(): Promise<void> {
    const { api, preferences, viewerTimezone } = this.planner;
    try {
      const [task, next, runs] = await Promise.all([
        api.getTask(this.taskId),
        api.nextFires(this.taskId, preferences.nextFireCount, viewerTimezone),
        api.taskRuns(this.taskId, Math.max(preferences.chartRuns, 10))
      ]);
      this.task = task;
      this.next = next;
      this.runs = runs.runs;
      this.error = null;
      const selected = this.run?.id ?? this.runs[0]?.id;
      if (selected !== undefined) {
        await this.select(selected, false);
      }
    } catch (error) {
      this.error = (error as Error).message;
    }
    this._changed.emit();
  }

  /** Show one run: its steps and log. */
  async select(runId: number, emit = true): Promise<void> {
    const { api, preferences } = this.planner;
    try {
      const [run, log] = await Promise.all([
        api.getRun(runId, 0, STEPS_PAGE),
        api.runLog(runId, preferences.logTailBytes)
      ]);
      this.run = this.withLiveProgress(run);
      this.log = log;
    } catch (error) {
      this.error = (error as Error).message;
    }
    if (emit) {
      this._changed.emit();
    }
  }

  async runNow(): Promise<void> {
    try {
      const run = await this.planner.api.runTask(this.taskId);
      this.runs = [run, ...this.runs.filter(item => item.id !== run.id)];
      await this.select(run.id, false);
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this._changed.emit();
  }

  async cancel(runId: number): Promise<void> {
    try {
      await this.planner.api.cancelRun(runId);
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    await this.refresh();
  }

  async setEnabled(enabled: boolean): Promise<void> {
    try {
      this.task = await this.planner.api.setEnabled(this.taskId, enabled);
      this.next = await this.planner.api.nextFires(
        this.taskId,
        this.planner.preferences.nextFireCount,
        this.planner.viewerTimezone
      );
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this._changed.emit();
  }

  /** Whether the selected run has steps the page does not show yet. */
  get hasMoreSteps(): boolean {
    return this.run !== null && this.run.steps.length < this.run.steps_total;
  }

  /** Add the next page of the selected run's steps. */
  async loadMoreSteps(): Promise<void> {
    const shown = this.run;
    if (!shown) {
      return;
    }
    try {
      const page = await this.planner.api.getRun(
        shown.id,
        shown.steps.length,
        STEPS_PAGE
      );
      if (this.run?.id === shown.id) {
        this.run = this.withLiveProgress({
          ...page,
          steps: [...this.run.steps, ...page.steps]
        });
      }
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this._changed.emit();
  }

  get isRunning(): boolean {
    return this.run !== null && ACTIVE.includes(this.run.status);
  }

  /** The selected run's steps with the progress its events reported. */
  private withLiveProgress(run: IRunDetail): IRunDetail {
    const live = this.planner.liveRuns.get(run.id);
    if (!live) {
      return run;
    }
    return {
      ...run,
      steps: run.steps.map(step =>
        live.steps[step.id] && step.status === 'running'
          ? { ...step, progress: live.steps[step.id] }
          : step
      )
    };
  }

  private onRunEvent(_: ITaskPlanner, event: IRunEvent): void {
    if (event.task_id !== this.taskId) {
      return;
    }
    if (event.action === 'started' || event.action === 'finished') {
      if (
        event.action === 'started' &&
        (!this.run || !ACTIVE.includes(this.run.status))
      ) {
        this.run = null; // follow the new run
      }
      void this.refresh();
      return;
    }
    if (this.run?.id !== event.run_id) {
      return;
    }
    if (event.action === 'step') {
      void this.updateStep(event.run_id, event.step_id); // its status, results
      return;
    }
    const stepId = event.step_id;
    const known = this.run.steps.some(step => step.id === stepId);
    if (!known) {
      if (!this.hasMoreSteps) {
        void this.updateStep(event.run_id, stepId); // a step begun after those shown
      }
      // A step beyond the steps shown: nothing on the page changes.
      return;
    }
    this.run = this.withLiveProgress({ ...this.run, status: event.status });
    this._changed.emit();
    this.scheduleLogReload(event.run_id);
  }

  /**
   * A step of the selected run began or ended: re-read that step alone, or for one the page
   * has not seen, the steps after those shown (when all are shown; else the counts only),
   * and the log. The steps already shown stay, so a user who loaded more keeps their place.
   */
  private async updateStep(
    runId: number,
    stepId: number | undefined
  ): Promise<void> {
    const shown = this.run;
    if (!shown || shown.id !== runId) {
      return;
    }
    // The steps shown are the run's first ones, in order: a step's index is its offset.
    const index = shown.steps.findIndex(step => step.id === stepId);
    const [offset, limit] =
      index >= 0
        ? [index, 1]
        : this.hasMoreSteps
          ? [0, 0]
          : [shown.steps.length, STEPS_PAGE];
    const { api, preferences } = this.planner;
    try {
      const [page, log] = await Promise.all([
        api.getRun(runId, offset, limit),
        api.runLog(runId, preferences.logTailBytes)
      ]);
      if (this.run?.id !== runId) {
        return;
      }
      this.log = log;
      const steps = [...this.run.steps];
      for (const step of page.steps) {
        const at = steps.findIndex(item => item.id === step.id);
        if (at >= 0) {
          steps[at] = step;
        } else if (index < 0) {
          steps.push(step);
        }
      }
      this.run = this.withLiveProgress({ ...page, steps });
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this._changed.emit();
  }

  private scheduleLogReload(runId: number): void {
    if (this._logTimer !== null) {
      return;
    }
    this._logTimer = setTimeout(() => {
      this._logTimer = null;
      if (this.run?.id === runId && !this._disposed) {
        void this.planner.api
          .runLog(runId, this.planner.preferences.logTailBytes)
          .then(log => {
            this.log = log;
            this._changed.emit();
          })
          .catch(() => undefined);
      }
    }, LOG_RELOAD_DELAY);
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._logTimer !== null) {
      clearTimeout(this._logTimer);
    }
    Signal.clearData(this);
  }

  private _changed = new Signal<this, void>(this);
  private _disposed = false;
  private _logTimer: ReturnType<typeof setTimeout> | null = null;
}
