import { describe, expect, it } from 'vitest';

import { ITask } from '../types';
import { sortTasks } from './sorting';

function task(id: number, name: string, enabled = true): ITask {
  return {
    id,
    name,
    enabled,
    owner: 'alice',
    created: '',
    updated: '',
    revision: 1,
    description: '',
    triggers: [],
    jobs: [],
    actions: [],
    series: null,
    settings: {}
  };
}

describe('sortTasks', () => {
  const tasks = [task(1, 'beta'), task(2, 'Alpha', false), task(3, 'gamma')];

  it('sorts by name either way', () => {
    expect(sortTasks(tasks, 'name', true).map(t => t.id)).toEqual([2, 1, 3]);
    expect(sortTasks(tasks, 'name', false).map(t => t.id)).toEqual([3, 1, 2]);
  });

  it('puts tasks without a next fire last', () => {
    const summaries = new Map([
      [1, { lastRun: null, nextFire: '2026-12-02T07:00:00+00:00' }],
      [3, { lastRun: null, nextFire: '2026-12-01T07:00:00+00:00' }]
    ]);
    expect(sortTasks(tasks, 'next', true, summaries).map(t => t.id)).toEqual([
      3, 1, 2
    ]);
    expect(sortTasks(tasks, 'next', false, summaries).map(t => t.id)).toEqual([
      1, 3, 2
    ]);
  });

  it('sorts enabled first', () => {
    expect(sortTasks(tasks, 'enabled', true).map(t => t.id)).toEqual([1, 3, 2]);
  });
});
