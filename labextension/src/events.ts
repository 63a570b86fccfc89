/**
 * The caller's run events from the planner's own stream (`GET /taskplanner/api/events`,
 * Server-Sent Events: only the user's runs, every owner's for admins who ask), and what the
 * views keep of them.
 */
import { ServerConnection } from '@jupyterlab/services';

import { apiURL } from './handler';
import { IProgress, RunStatus } from './types';

export interface IRunEvent {
  action: 'started' | 'step' | 'progress' | 'finished';
  run_id: number;
  task_id: number | null;
  owner: string;
  status: RunStatus;
  trigger?: string;
  step_id?: number;
  step_kind?: string;
  step_name?: string;
  step_status?: string;
  done?: number;
  total?: number;
  message?: string;
}

const ACTIONS = ['started', 'step', 'progress', 'finished'];

/** A run event from the JSON data of a stream message, or null for anything else. */
export function asRunEvent(
  data: { [key: string]: any } | null | undefined
): IRunEvent | null {
  if (!data || typeof data !== 'object') {
    return null;
  }
  const { action, run_id, task_id, owner, status } = data;
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
  for (const key of [
    'trigger',
    'message',
    'step_kind',
    'step_name',
    'step_status'
  ] as const) {
    if (typeof data[key] === 'string') {
      event[key] = data[key];
    }
  }
  for (const key of ['step_id', 'done', 'total'] as const) {
    if (typeof data[key] === 'number') {
      event[key] = data[key];
    }
  }
  return event;
}

/** One message of a Server-Sent Events stream. */
export interface IStreamMessage {
  event: string;
  data: string;
}

/**
 * Splits a Server-Sent Events stream into messages, fed text as it arrives (lines may be
 * cut anywhere between two chunks); comments (the heartbeats) are skipped.
 */
export class EventStreamParser {
  /** Take in a piece of the stream; the messages it completed. */
  feed(text: string): IStreamMessage[] {
    this.buffer += text;
    const messages: IStreamMessage[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === '') {
        if (this.data.length) {
          messages.push({ event: this.event, data: this.data.join('\n') });
        }
        this.event = 'message';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) {
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) {
        value = value.slice(1);
      }
      if (field === 'event') {
        this.event = value;
      } else if (field === 'data') {
        this.data.push(value);
      }
    }
    return messages;
  }

  private buffer = '';
  private event = 'message';
  private data: string[] = [];
}

/** How long to wait before connecting again after a stream ended or failed (ms). */
export const RECONNECT_DELAYS = [1000, 2000, 5000, 10000, 30000];

/**
 * The planner's run event stream, kept open: each run event goes to `onEvent`; a stream
 * that ends (the server restarts) or fails is opened again after a growing delay, and
 * `onConnect` tells when it is (back) open, so views can read what they missed.
 */
export class RunEventStream {
  constructor(
    private readonly options: {
      settings: ServerConnection.ISettings;
      onEvent: (event: IRunEvent) => void;
      onConnect?: () => void;
      /** Every owner's runs (admins only). */
      allOwners?: () => Promise<boolean>;
      delays?: number[];
    }
  ) {}

  /** Connect, and stay connected until `dispose`. */
  start(): void {
    if (!this._running && !this._disposed) {
      this._running = true;
      void this.loop();
    }
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    this._abort?.abort();
    if (this._wake) {
      this._wake();
    }
  }

  private async loop(): Promise<void> {
    const delays = this.options.delays ?? RECONNECT_DELAYS;
    let failures = 0;
    while (!this._disposed) {
      const opened = await this.once();
      if (this._disposed) {
        break;
      }
      failures = opened ? 0 : failures + 1;
      const delay = delays[Math.min(failures, delays.length - 1)];
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, delay);
        this._wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this._wake = null;
    }
  }

  /** One connection until it ends; whether it was open at all. */
  private async once(): Promise<boolean> {
    const { settings, onEvent, onConnect, allOwners } = this.options;
    this._abort = new AbortController();
    let opened = false;
    try {
      const all = allOwners ? await allOwners() : false;
      const url = apiURL('events', settings) + (all ? '?all=true' : '');
      const response = await ServerConnection.makeRequest(
        url,
        {
          headers: { Accept: 'text/event-stream' },
          signal: this._abort.signal
        },
        settings
      );
      if (!response.ok || !response.body) {
        return false;
      }
      opened = true;
      onConnect?.();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new EventStreamParser();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        for (const message of parser.feed(
          decoder.decode(value, { stream: true })
        )) {
          if (message.event !== 'run') {
            continue;
          }
          let data: any = null;
          try {
            data = JSON.parse(message.data);
          } catch {
            continue;
          }
          const event = asRunEvent(data);
          if (event) {
            onEvent(event);
          }
        }
      }
    } catch (error) {
      if (!this._disposed) {
        console.debug('Task Planner: the run event stream ended.', error);
      }
    }
    return opened;
  }

  private _abort: AbortController | null = null;
  private _wake: (() => void) | null = null;
  private _running = false;
  private _disposed = false;
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
