import { describe, expect, it } from 'vitest';

import { LiveRuns, RUN_EVENT_SCHEMA, asRunEvent, fraction } from './events';

const base = {
  schema_id: RUN_EVENT_SCHEMA,
  run_id: 5,
  task_id: 2,
  owner: 'alice'
};

describe('asRunEvent', () => {
  it('takes the planner run events only', () => {
    expect(
      asRunEvent({ ...base, action: 'started', status: 'running' })
    ).toEqual({
      action: 'started',
      run_id: 5,
      task_id: 2,
      owner: 'alice',
      status: 'running'
    });
    expect(
      asRunEvent({
        ...base,
        schema_id: 'other',
        action: 'started',
        status: 'running'
      })
    ).toBeNull();
    expect(
      asRunEvent({ ...base, action: 'exploded', status: 'running' })
    ).toBeNull();
    expect(
      asRunEvent({ ...base, run_id: '5', action: 'started', status: 'running' })
    ).toBeNull();
    expect(asRunEvent(null)).toBeNull();
  });
});

describe('LiveRuns', () => {
  it('follows a run from start through progress to its end', () => {
    const live = new LiveRuns();
    live.apply(asRunEvent({ ...base, action: 'started', status: 'running' })!);
    expect(live.active(2).map(run => run.runId)).toEqual([5]);
    const progress = asRunEvent({
      ...base,
      action: 'progress',
      status: 'running',
      step_id: 9,
      done: 2,
      total: 4,
      message: 'cell 2 of 4'
    })!;
    const run = live.apply(progress);
    expect(run.steps[9]).toEqual({ done: 2, total: 4, message: 'cell 2 of 4' });
    expect(fraction(run.steps[9])).toBe(0.5);
    live.apply(
      asRunEvent({ ...base, action: 'finished', status: 'succeeded' })!
    );
    expect(live.get(5)?.status).toBe('succeeded');
    expect(live.active()).toEqual([]);
  });

  it('forgets old ended runs', () => {
    const live = new LiveRuns();
    for (let id = 1; id <= 5; id++) {
      live.apply(
        asRunEvent({
          ...base,
          run_id: id,
          action: 'finished',
          status: 'failed'
        })!
      );
    }
    live.prune(2);
    expect(live.get(5)).toBeDefined();
    expect(live.get(3)).toBeUndefined();
  });
});
