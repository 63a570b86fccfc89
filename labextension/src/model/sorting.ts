/** Sorting the task list's rows by a column. */
import { IRun, ITask } from '../types';

export type SortKey = 'id' | 'name' | 'enabled' | 'owner' | 'next' | 'last';

/** What a row shows beside its task: its last run and its next fire time. */
export interface ITaskSummary {
  lastRun: IRun | null;
  nextFire: string | null;
}

function compareText(a: string | null, b: string | null): number {
  if (a === b) {
    return 0;
  }
  if (a === null) {
    return 1; // rows without a value go last in either direction
  }
  if (b === null) {
    return -1;
  }
  return a.localeCompare(b);
}

/** The tasks sorted by `key`, ascending or not; ties keep the id order. */
export function sortTasks(
  tasks: ITask[],
  key: SortKey,
  ascending: boolean,
  summaries: Map<number, ITaskSummary> = new Map()
): ITask[] {
  const sign = ascending ? 1 : -1;
  const value = (task: ITask): string | number | null => {
    const summary = summaries.get(task.id);
    switch (key) {
      case 'id':
        return task.id;
      case 'name':
        return task.name.toLocaleLowerCase();
      case 'enabled':
        return task.enabled ? 0 : 1;
      case 'owner':
        return task.owner;
      case 'next':
        return summary?.nextFire
          ? String(Date.parse(summary.nextFire)).padStart(16, '0')
          : null;
      case 'last':
        return summary?.lastRun?.status ?? null;
    }
  };
  return [...tasks].sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    let order: number;
    if (typeof x === 'number' && typeof y === 'number') {
      order = (x - y) * sign;
    } else if (x === null || y === null) {
      order = compareText(x as string | null, y as string | null); // nulls last
    } else {
      order = compareText(String(x), String(y)) * sign;
    }
    return order || a.id - b.id;
  });
}
