import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { IRunEvent } from '../events';
import { ITaskPlanner } from '../tokens';
import { ITask } from '../types';
import { ITaskSummary, SortKey, sortParam } from './sorting';

export type EnabledFilter = 'all' | 'enabled' | 'disabled';

/** What the task list shows: a filter, a page, a sort order. */
export interface ITaskListQuery {
  search: string;
  enabled: EnabledFilter;
  /** Admins: every owner's tasks instead of their own. */
  allOwners: boolean;
  page: number;
  sortKey: SortKey;
  ascending: boolean;
}

/**
 * The task list: one page of tasks from `GET /tasks` (filtered, sorted and paged by the
 * server), each with its last run and next fire time, kept current by run events.
 */
export class TaskListModel implements IDisposable {
  constructor(readonly planner: ITaskPlanner) {
    planner.runEvent.connect(this.onRunEvent, this);
    planner.preferencesChanged.connect(() => void this.refresh(), this);
    void planner.isAdmin().then(admin => {
      this.isAdmin = admin;
      this._changed.emit();
    });
  }

  query: ITaskListQuery = {
    search: '',
    enabled: 'all',
    allOwners: false,
    page: 0,
    sortKey: 'id',
    ascending: true
  };
  tasks: ITask[] = [];
  total = 0;
  summaries = new Map<number, ITaskSummary>();
  isAdmin = false;
  loading = false;
  error: string | null = null;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  get pageSize(): number {
    return this.planner.preferences.pageSize;
  }

  get pageCount(): number {
    return Math.max(1, Math.ceil(this.total / this.pageSize));
  }

  /** The page's tasks, in the order the server sorted all of them. */
  get rows(): ITask[] {
    return this.tasks;
  }

  /** Change the query (a new filter or order starts at the first page) and reload. */
  async setQuery(change: Partial<ITaskListQuery>): Promise<void> {
    const restart = ['search', 'enabled', 'allOwners', 'sortKey', 'ascending'];
    const fromStart = restart.some(key => key in change);
    this.query = {
      ...this.query,
      ...(fromStart ? { page: 0 } : {}),
      ...change
    };
    await this.refresh();
  }

  /** Sort all the tasks by `key` (the same key again reverses the order). */
  sortBy(key: SortKey): Promise<void> {
    const ascending = this.query.sortKey === key ? !this.query.ascending : true;
    return this.setQuery({ sortKey: key, ascending });
  }

  async refresh(): Promise<void> {
    const { search, enabled, allOwners, page, sortKey, ascending } = this.query;
    const serial = ++this._serial;
    this.loading = true;
    this._changed.emit();
    try {
      const reply = await this.planner.api.listTasks({
        q: search || undefined,
        enabled: enabled === 'all' ? undefined : enabled === 'enabled',
        owner: allOwners ? '*' : undefined,
        include: 'next,last_run',
        sort: sortParam(sortKey, ascending),
        limit: this.pageSize,
        offset: page * this.pageSize
      });
      if (serial !== this._serial) {
        return; // a newer query answered first
      }
      this.tasks = reply.tasks;
      this.total = reply.total;
      this.error = null;
      // Each row's next start and last run came with the page: no request per row.
      for (const task of this.tasks) {
        const summary = reply.summaries?.[String(task.id)];
        this.summaries.set(task.id, {
          lastRun: summary?.last_run ?? null,
          nextFire: summary?.next_start ?? null
        });
      }
    } catch (error) {
      this.error = (error as Error).message;
    } finally {
      if (serial === this._serial) {
        this.loading = false;
        this._changed.emit();
      }
    }
  }

  /** Enable or disable a task from its row. */
  async toggleEnabled(task: ITask): Promise<void> {
    try {
      const updated = await this.planner.api.setEnabled(task.id, !task.enabled);
      this.tasks = this.tasks.map(item =>
        item.id === task.id ? updated : item
      );
      await this.loadSummary(updated);
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this._changed.emit();
  }

  async runNow(task: ITask): Promise<void> {
    try {
      await this.planner.api.runTask(task.id);
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
      this._changed.emit();
    }
  }

  private async loadSummary(task: ITask): Promise<void> {
    const [runs, next] = await Promise.all([
      this.planner.api.taskRuns(task.id, 1).catch(() => null),
      this.planner.api.nextFires(task.id, 1).catch(() => null)
    ]);
    this.summaries.set(task.id, {
      lastRun: runs?.runs[0] ?? null,
      nextFire: next?.next[0]?.server_time ?? null
    });
  }

  /** A run of a listed task started or ended: refresh that row only. */
  private onRunEvent(_: ITaskPlanner, event: IRunEvent): void {
    if (
      event.action === 'progress' ||
      event.action === 'step' ||
      event.task_id === null
    ) {
      return;
    }
    const task = this.tasks.find(item => item.id === event.task_id);
    if (task) {
      void this.loadSummary(task).then(() => this._changed.emit());
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    Signal.clearData(this);
  }

  private _changed = new Signal<this, void>(this);
  private _disposed = false;
  private _serial = 0;
}
