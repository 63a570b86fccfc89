/** The planner's records as the REST API sends them (see docs/rest-api.md). */

export type ComponentKind = 'trigger' | 'job' | 'action' | 'series';
export const KINDS: ComponentKind[] = ['trigger', 'job', 'action', 'series'];

export type JSONSchema = { [key: string]: any };

/** An available component type, from `GET /components`. */
export interface IComponentType {
  type: string;
  kind: ComponentKind;
  title: string;
  description: string;
  schema: JSONSchema;
  version: number;
  permission: string | null;
  runs_code: boolean;
  permissions?: string[];
  flavors?: string[];
  accepts?: string[];
}

/** A trigger, job, action or series of a task. */
export interface IEntry {
  type: string;
  name?: string;
  version?: number;
  config: { [key: string]: any };
  secrets?: string[];
  when?: string;
}

export interface ITaskBody {
  name: string;
  description?: string;
  enabled?: boolean;
  triggers: IEntry[];
  jobs: IEntry[];
  actions: IEntry[];
  series: IEntry | null;
  settings: { [key: string]: any };
}

export interface ITask extends ITaskBody {
  id: number;
  owner: string;
  created: string;
  updated: string;
  revision: number;
}

export interface IPage {
  total: number;
  limit: number;
  offset: number;
  next?: string;
}

export interface ITaskPage extends IPage {
  tasks: ITask[];
  /** With `include`: per task id, its next start and newest run. */
  summaries?: {
    [taskId: string]: { next_start?: string | null; last_run?: IRun | null };
  };
}

export type RunStatus =
  | 'queued'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled'
  | 'timed_out'
  | 'interrupted'
  | 'skipped';

/** Statuses of a run that has not ended. */
export const ACTIVE: RunStatus[] = ['queued', 'running'];

/** Statuses of a run or step someone or something chose to stop or not start: its error
 * field gives the reason, not a failure. */
export const STOPPED: string[] = ['cancelled', 'skipped'];

export interface IRun {
  id: number;
  task_id: number | null;
  owner: string;
  task_name: string;
  status: RunStatus;
  trigger: string;
  started_by: string;
  parameters: { [key: string]: any };
  created: string;
  started: string | null;
  finished: string | null;
  error: string | null;
}

export interface IRunPage extends IPage {
  runs: IRun[];
}

export interface IProgress {
  done: number;
  total: number;
  message: string;
}

export interface IResult {
  flavor: 'file' | 'text' | 'none';
  value: string | null;
  valid: boolean;
  job: string;
  metadata: { [key: string]: any };
}

export interface IStep {
  id: number;
  run_id: number;
  kind: 'series' | 'job' | 'action';
  name: string;
  type: string;
  set_index: number | null;
  set_values: { [key: string]: any } | null;
  attempt: number;
  status: string;
  started: string | null;
  finished: string | null;
  error: string | null;
  results: IResult[];
  progress?: IProgress;
}

/** A run with a page of its steps (`steps_offset`, `steps_limit` of `steps_total`). */
export interface IRunDetail extends IRun {
  steps: IStep[];
  steps_total: number;
  step_counts: { [status: string]: number };
  steps_limit: number;
  steps_offset: number;
  steps_next?: string;
}

export interface INextFire {
  trigger: number;
  type: string;
  time: string;
  server_time: string;
  viewer_time?: string;
}

export interface INextFires {
  timezone: string;
  server_timezone: string;
  viewer_timezone?: string;
  enabled: boolean;
  next: INextFire[];
}
