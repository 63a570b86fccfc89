import { describe, expect, it, vi } from 'vitest';

import { FakePlanner, asPlanner, fakeAPI } from '../testing/fakePlanner';
import { ITask } from '../types';
import { TaskListModel } from './taskList';

function task(id: number, name: string): ITask {
  return {
    id,
    name,
    enabled: true,
    owner: 'alice',
    settings: {}
  } as unknown as ITask;
}

describe('TaskListModel', () => {
  it('loads a page with a summary per task, and refreshes only the row of a run event', async () => {
    const calls: string[] = [];
    const fake = new FakePlanner(
      fakeAPI(calls, { tasks: [task(1, 'b'), task(2, 'a')], runs: [] })
    );
    const model = new TaskListModel(asPlanner(fake));
    await model.refresh();
    expect(model.rows.map(row => row.id)).toEqual([1, 2]);
    // One request for the page, the rows' next starts and last runs included.
    expect(calls).toEqual(['listTasks include=next,last_run']);
    expect(model.summaries.get(1)).toEqual({ lastRun: null, nextFire: null });
    // Sorting asks the server for the order of all the tasks, from the first page.
    await model.setQuery({ page: 1 });
    calls.length = 0;
    await model.sortBy('name');
    expect(calls).toEqual(['listTasks include=next,last_run sort=name']);
    expect(model.query.page).toBe(0);
    expect(model.rows.map(row => row.id)).toEqual([2, 1]);
    await model.sortBy('name');
    expect(model.rows.map(row => row.id)).toEqual([1, 2]);
    expect(calls[1]).toBe('listTasks include=next,last_run sort=-name');
    calls.length = 0;
    fake.emit({
      action: 'progress',
      run_id: 5,
      task_id: 2,
      status: 'running',
      step_id: 1,
      done: 1,
      total: 2
    });
    fake.emit({
      action: 'step',
      run_id: 5,
      task_id: 2,
      status: 'running',
      step_id: 1,
      step_status: 'succeeded'
    });
    fake.emit({ action: 'started', run_id: 6, task_id: 3, status: 'running' });
    expect(calls).toEqual([]);
    fake.emit({
      action: 'finished',
      run_id: 5,
      task_id: 2,
      status: 'succeeded'
    });
    await vi.waitFor(() =>
      expect(calls.sort()).toEqual(['nextFires 2', 'taskRuns 2'])
    );
  });

  it('starts a new filter at the first page', async () => {
    const calls: string[] = [];
    const model = new TaskListModel(
      asPlanner(new FakePlanner(fakeAPI(calls, { tasks: [], runs: [] })))
    );
    model.query.page = 3;
    await model.setQuery({ search: 'report' });
    expect(model.query.page).toBe(0);
  });
});
