/** The task list's sort columns and the order each asks the server for. */
import { IRun } from '../types';

export type SortKey = 'id' | 'name' | 'enabled' | 'owner' | 'next' | 'last';

/** What a row shows beside its task: its last run and its next fire time. */
export interface ITaskSummary {
  lastRun: IRun | null;
  nextFire: string | null;
}

/** The `GET /tasks` key of each column. */
const SERVER_KEYS: { [key in SortKey]: string } = {
  id: 'id',
  name: 'name',
  enabled: 'enabled',
  owner: 'owner',
  next: 'next_fire',
  last: 'last_run'
};

/**
 * The `sort` of `GET /tasks` for a column and direction: the server orders all the tasks
 * before paging, so a page holds the first tasks of the whole order, not of one page.
 */
export function sortParam(key: SortKey, ascending: boolean): string {
  return `${ascending ? '' : '-'}${SERVER_KEYS[key]}`;
}
