/** A Task Planner service for the models' unit tests: a fake API, real signals and state. */
import { Signal } from '@lumino/signaling';

import type { PlannerAPI } from '../api';
import { IRunEvent, LiveRuns, asRunEvent } from '../events';
import { DEFAULT_PREFERENCES, IPreferences, ITaskPlanner } from '../tokens';
import { IRun, IRunDetail, ITask } from '../types';

const trans = {
  __: (text: string, ...args: any[]) =>
    text.replace(/%(\d)/g, (_, n) => String(args[Number(n) - 1])),
  _n: (one: string, many: string, n: number) =>
    (n === 1 ? one : many).replace('%1', String(n))
};

export class FakePlanner {
  calls: string[] = [];
  readonly liveRuns = new LiveRuns();
  preferences: IPreferences = { ...DEFAULT_PREFERENCES };
  readonly viewerTimezone = 'Asia/Tokyo';
  readonly runEvent = new Signal<any, IRunEvent>(this);
  readonly preferencesChanged = new Signal<any, IPreferences>(this);
  readonly trans = trans as any;
  settings = null;

  constructor(readonly api: PlannerAPI) {}

  components = async () => [];
  openapi = async () => ({});
  isAdmin = async () => false;

  /** Deliver a run event as the planner's stream would (its JSON data). */
  emit(data: { [key: string]: any }): void {
    const event = asRunEvent({
      owner: 'alice',
      ...data
    });
    if (!event) {
      throw new Error(`not a run event: ${JSON.stringify(data)}`);
    }
    this.liveRuns.apply(event);
    this.runEvent.emit(event);
  }
}

/** A fake API over fixed tasks and runs that records each call's name. */
export function fakeAPI(
  calls: string[],
  data: { tasks: ITask[]; runs: IRunDetail[] }
): PlannerAPI {
  const page = (runs: IRun[]) => ({
    runs,
    total: runs.length,
    limit: 50,
    offset: 0
  });
  const api = {
    listTasks: async (q: { include?: string; sort?: string }) => {
      const asked = [
        'listTasks',
        ...(q.include ? [`include=${q.include}`] : []),
        ...(q.sort && q.sort !== 'id' ? [`sort=${q.sort}`] : [])
      ];
      calls.push(asked.join(' '));
      // Like the server: the order of all the tasks (the fake knows only name and id).
      const sign = q.sort?.startsWith('-') ? -1 : 1;
      const tasks = [...data.tasks].sort((a, b) =>
        q.sort?.endsWith('name')
          ? sign * a.name.localeCompare(b.name) || sign * (a.id - b.id)
          : sign * (a.id - b.id)
      );
      const summaries = Object.fromEntries(
        data.tasks.map(task => [
          String(task.id),
          {
            next_start: null,
            last_run: data.runs.find(run => run.task_id === task.id) ?? null
          }
        ])
      );
      return {
        tasks,
        total: data.tasks.length,
        limit: 20,
        offset: 0,
        ...(q.include ? { summaries } : {})
      };
    },
    getTask: async (id: number) => {
      calls.push(`getTask ${id}`);
      return data.tasks.find(task => task.id === id)!;
    },
    taskRuns: async (id: number) => {
      calls.push(`taskRuns ${id}`);
      return page(data.runs.filter(run => run.task_id === id));
    },
    nextFires: async (id: number, _count: number, timezone?: string) => {
      calls.push(`nextFires ${id}`);
      return {
        timezone: 'UTC',
        server_timezone: 'UTC',
        viewer_timezone: timezone,
        enabled: true,
        next: []
      };
    },
    getRun: async (id: number, offset = 0, limit = 500) => {
      calls.push(offset ? `getRun ${id} from ${offset}` : `getRun ${id}`);
      const run = data.runs.find(item => item.id === id)!;
      const steps = run.steps.slice(offset, offset + limit);
      return {
        ...run,
        steps,
        steps_total: run.steps.length,
        steps_offset: offset,
        steps_limit: limit
      };
    },
    runLog: async (id: number) => {
      calls.push(`runLog ${id}`);
      return `log of ${id}`;
    }
  };
  return api as unknown as PlannerAPI;
}

export function asPlanner(fake: FakePlanner): ITaskPlanner {
  return fake as unknown as ITaskPlanner;
}
