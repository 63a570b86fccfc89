import { afterEach, describe, expect, it, vi } from 'vitest';

import { FakePlanner, asPlanner, fakeAPI } from '../testing/fakePlanner';
import { IRunDetail, ITask } from '../types';
import { STEPS_PAGE, TaskDetailModel } from './taskDetail';

const task = {
  id: 1,
  name: 'Report',
  enabled: true,
  settings: {}
} as unknown as ITask;

function run(status: IRunDetail['status'], stepStatus = 'running'): IRunDetail {
  return {
    id: 7,
    task_id: 1,
    owner: 'alice',
    task_name: 'Report',
    status,
    trigger: 'api',
    started_by: 'alice',
    parameters: {},
    created: '2026-12-01T06:00:00+00:00',
    started: '2026-12-01T06:00:00+00:00',
    finished: null,
    error: null,
    steps_total: 1,
    step_counts: { [stepStatus]: 1 },
    steps_limit: 500,
    steps_offset: 0,
    steps: [
      {
        id: 3,
        run_id: 7,
        kind: 'job',
        name: 'report',
        type: 'notebook',
        set_index: null,
        set_values: null,
        attempt: 1,
        status: stepStatus,
        started: null,
        finished: null,
        error: null,
        results: []
      }
    ]
  };
}

function setUp(detail: IRunDetail) {
  const calls: string[] = [];
  const fake = new FakePlanner(
    fakeAPI(calls, { tasks: [task], runs: [detail] })
  );
  fake.calls = calls;
  const model = new TaskDetailModel(asPlanner(fake), 1);
  return { fake, calls, model };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('TaskDetailModel and run events', () => {
  it('loads the task, its next starts in the viewer zone, its runs and the newest run', async () => {
    const { model, calls } = setUp(run('running'));
    await model.refresh();
    expect(model.task?.name).toBe('Report');
    expect(model.next?.viewer_timezone).toBe('Asia/Tokyo');
    expect(model.run?.id).toBe(7);
    expect(model.log).toBe('log of 7');
    expect(calls).toEqual(
      expect.arrayContaining([
        'getTask 1',
        'taskRuns 1',
        'getRun 7',
        'runLog 7'
      ])
    );
  });

  it('applies progress events to the running step without asking the server', async () => {
    vi.useFakeTimers();
    const { model, fake, calls } = setUp(run('running'));
    await model.refresh();
    calls.length = 0;
    let changes = 0;
    model.changed.connect(() => changes++);
    fake.emit({
      action: 'progress',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: 3,
      done: 2,
      total: 5,
      message: 'cell 2 of 5'
    });
    expect(model.run?.steps[0].progress).toEqual({
      done: 2,
      total: 5,
      message: 'cell 2 of 5'
    });
    expect(changes).toBe(1);
    expect(calls).toEqual([]);
    // The log follows, once, a moment later (not per event).
    fake.emit({
      action: 'progress',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: 3,
      done: 3,
      total: 5,
      message: 'cell 3 of 5'
    });
    await vi.advanceTimersByTimeAsync(2000);
    expect(calls).toEqual(['runLog 7']);
  });

  it("ignores other tasks' events and reloads on its own run's end", async () => {
    const { model, fake, calls } = setUp(run('running'));
    await model.refresh();
    calls.length = 0;
    fake.emit({ action: 'finished', run_id: 99, task_id: 2, status: 'failed' });
    expect(calls).toEqual([]);
    fake.emit({
      action: 'finished',
      run_id: 7,
      task_id: 1,
      status: 'succeeded'
    });
    await vi.waitFor(() => expect(calls).toContain('getRun 7'));
    expect(calls).toContain('taskRuns 1');
  });

  it("re-reads its run when one of the run's steps begins or ends", async () => {
    const { model, fake, calls } = setUp(run('running'));
    await model.refresh();
    calls.length = 0;
    fake.emit({
      action: 'step',
      run_id: 99,
      task_id: 1,
      status: 'running',
      step_id: 4,
      step_status: 'running'
    });
    expect(calls).toEqual([]); // not the run this page shows
    fake.emit({
      action: 'step',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: 3,
      step_kind: 'job',
      step_name: 'report',
      step_status: 'succeeded'
    });
    await vi.waitFor(() => expect(calls).toEqual(['getRun 7', 'runLog 7']));
  });

  it('fetches the steps after those shown when a step it has not seen reports', async () => {
    const { model, fake, calls } = setUp(run('running'));
    await model.refresh();
    calls.length = 0;
    fake.emit({
      action: 'progress',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: 4,
      done: 1,
      total: 2
    });
    await vi.waitFor(() => expect(calls).toContain('getRun 7 from 1'));
  });
});

describe('TaskDetailModel and a run of many steps', () => {
  function many(count: number): IRunDetail {
    const detail = run('succeeded', 'succeeded');
    const [step] = detail.steps;
    const steps = Array.from({ length: count }, (_, i) => ({
      ...step,
      id: 10 + i
    }));
    return { ...detail, steps, steps_total: count };
  }

  it('shows the first page and adds the next one when asked', async () => {
    const { model, calls } = setUp(many(STEPS_PAGE * 2 + 5));
    await model.refresh();
    expect(model.run?.steps).toHaveLength(STEPS_PAGE);
    expect(model.run?.steps_total).toBe(STEPS_PAGE * 2 + 5);
    expect(model.hasMoreSteps).toBe(true);
    await model.loadMoreSteps();
    await model.loadMoreSteps();
    expect(calls).toContain(`getRun 7 from ${STEPS_PAGE * 2}`);
    expect(model.run?.steps.map(step => step.id)).toEqual(
      many(STEPS_PAGE * 2 + 5).steps.map(step => step.id)
    );
    expect(model.hasMoreSteps).toBe(false);
  });

  it('does not re-read the run for progress of a step beyond the page', async () => {
    const { model, fake, calls } = setUp(many(STEPS_PAGE + 1));
    await model.refresh();
    calls.length = 0;
    fake.emit({
      action: 'progress',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: 10 + STEPS_PAGE,
      done: 1,
      total: 2
    });
    await new Promise(resolve => setTimeout(resolve, 10));
    expect(calls).toEqual([]);
  });

  it('re-reads only the step that changed, keeping the steps loaded so far', async () => {
    const detail = many(STEPS_PAGE * 2 + 5);
    const { model, fake, calls } = setUp(detail);
    await model.refresh();
    await model.loadMoreSteps();
    expect(model.run?.steps).toHaveLength(STEPS_PAGE * 2);
    calls.length = 0;
    const changed = detail.steps[STEPS_PAGE + 3];
    detail.steps[STEPS_PAGE + 3] = { ...changed, status: 'failed' };
    fake.emit({
      action: 'step',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: changed.id,
      step_status: 'failed'
    });
    await vi.waitFor(() =>
      expect(calls.sort()).toEqual([
        `getRun 7 from ${STEPS_PAGE + 3}`,
        'runLog 7'
      ])
    );
    await vi.waitFor(() =>
      expect(model.run?.steps[STEPS_PAGE + 3].status).toBe('failed')
    );
    expect(model.run?.steps.map(step => step.id)).toEqual(
      detail.steps.slice(0, STEPS_PAGE * 2).map(step => step.id)
    );
  });

  it('adds a step begun after all those shown', async () => {
    const detail = many(3);
    const { model, fake, calls } = setUp(detail);
    await model.refresh();
    calls.length = 0;
    detail.steps.push({ ...detail.steps[0], id: 50, status: 'running' });
    detail.steps_total = 4;
    fake.emit({
      action: 'step',
      run_id: 7,
      task_id: 1,
      status: 'running',
      step_id: 50,
      step_status: 'running'
    });
    await vi.waitFor(() => expect(model.run?.steps).toHaveLength(4));
    expect(calls).toContain('getRun 7 from 3');
    expect(model.run?.steps.map(step => step.id)).toEqual([10, 11, 12, 50]);
    expect(model.hasMoreSteps).toBe(false);
  });
});
