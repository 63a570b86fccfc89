import { ServerConnection } from '@jupyterlab/services';

import { apiURL, requestAPI } from './handler';
import {
  IComponentType,
  INextFires,
  IRun,
  IRunDetail,
  IRunPage,
  ITask,
  ITaskBody,
  ITaskPage,
  JSONSchema
} from './types';

/** What a task listing asks for: `GET /tasks`'s query. */
export interface ITaskQuery {
  q?: string;
  enabled?: boolean;
  owner?: string;
  /** Summaries to add per task: `next`, `last_run`, comma-separated. */
  include?: string;
  /** The order of the whole list, paged after (`name`, `-last_run`, ...). */
  sort?: string;
  limit: number;
  offset: number;
}

function query(params: {
  [key: string]: string | number | boolean | undefined;
}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') {
      search.set(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function json(method: string, body?: unknown): RequestInit {
  return body === undefined
    ? { method }
    : { method, body: JSON.stringify(body) };
}

/** The planner's REST API, one method per call the Lab extension makes. */
export class PlannerAPI {
  constructor(
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  private call<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
    return requestAPI<T>(endPoint, init, this.serverSettings);
  }

  /** The URL of a run's result file (for a download link). */
  fileURL(runId: number, path: string): string {
    const encoded = path.split('/').map(encodeURIComponent).join('/');
    return apiURL(`runs/${runId}/files/${encoded}`, this.serverSettings);
  }

  listTasks(q: ITaskQuery): Promise<ITaskPage> {
    return this.call(`tasks${query({ ...q })}`);
  }

  getTask(id: number): Promise<ITask> {
    return this.call(`tasks/${id}`);
  }

  createTask(body: ITaskBody): Promise<ITask> {
    return this.call('tasks', json('POST', body));
  }

  updateTask(
    id: number,
    body: ITaskBody & { revision?: number }
  ): Promise<ITask> {
    return this.call(`tasks/${id}`, json('PUT', body));
  }

  deleteTask(id: number): Promise<void> {
    return this.call(`tasks/${id}`, json('DELETE'));
  }

  setEnabled(id: number, enabled: boolean): Promise<ITask> {
    return this.call(
      `tasks/${id}/${enabled ? 'enable' : 'disable'}`,
      json('POST')
    );
  }

  runTask(id: number): Promise<IRun> {
    return this.call(`tasks/${id}/run`, json('POST'));
  }

  nextFires(id: number, count: number, timezone?: string): Promise<INextFires> {
    return this.call(`tasks/${id}/next${query({ count, timezone })}`);
  }

  taskRuns(id: number, limit: number, offset = 0): Promise<IRunPage> {
    return this.call(`tasks/${id}/runs${query({ limit, offset })}`);
  }

  /** A run with `limit` of its steps from `offset` (the server's page size by default). */
  getRun(id: number, offset?: number, limit?: number): Promise<IRunDetail> {
    return this.call(
      `runs/${id}${query({ steps_offset: offset, steps_limit: limit })}`
    );
  }

  runLog(id: number, tail?: number): Promise<string> {
    return this.call(`runs/${id}/log${query({ tail })}`);
  }

  cancelRun(id: number): Promise<IRun> {
    return this.call(`runs/${id}/cancel`, json('POST'));
  }

  /** A result file's content as text (notebooks and HTML, to open them in Lab). */
  async fileText(runId: number, path: string): Promise<string> {
    const response = await ServerConnection.makeRequest(
      this.fileURL(runId, path),
      {},
      this.serverSettings
    );
    if (!response.ok) {
      throw new ServerConnection.ResponseError(response);
    }
    return response.text();
  }

  async components(): Promise<IComponentType[]> {
    return (await this.call<{ components: IComponentType[] }>('components'))
      .components;
  }

  /** The API's OpenAPI document: the task's own fields and settings come from it. */
  openapi(): Promise<JSONSchema> {
    return this.call('openapi.json');
  }

  /** Whether the caller may list every owner's tasks (holds `taskplanner:admin`). */
  async isAdmin(): Promise<boolean> {
    try {
      await this.listTasks({ owner: '*', limit: 1, offset: 0 });
      return true;
    } catch {
      return false;
    }
  }
}
