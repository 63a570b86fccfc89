import { describe, expect, it } from 'vitest';

import { axisMax, durationBars, formatDuration } from './chart';
import { IRun } from './types';

function run(id: number, seconds: number | null, status = 'succeeded'): IRun {
  const started = '2026-12-01T06:00:00+00:00';
  return {
    id,
    task_id: 1,
    owner: 'alice',
    task_name: 't',
    status: status as IRun['status'],
    trigger: 'api',
    started_by: 'alice',
    parameters: {},
    created: started,
    started,
    finished:
      seconds === null
        ? null
        : new Date(Date.parse(started) + seconds * 1000).toISOString(),
    error: null
  };
}

describe('durationBars', () => {
  it('keeps the newest finished runs, oldest first', () => {
    const bars = durationBars(
      [run(4, null, 'running'), run(3, 2, 'failed'), run(2, 5), run(1, 1)],
      2
    );
    expect(bars.map(bar => [bar.runId, bar.seconds, bar.status])).toEqual([
      [2, 5, 'succeeded'],
      [3, 2, 'failed']
    ]);
  });

  it('rounds the axis up', () => {
    expect(axisMax(durationBars([run(1, 3.2)], 5))).toBe(5);
    expect(axisMax(durationBars([run(1, 140)], 5))).toBe(200);
    expect(axisMax([])).toBe(1);
  });

  it('formats durations', () => {
    expect(formatDuration(0.25)).toBe('250 ms');
    expect(formatDuration(4.25)).toBe('4.3 s');
    expect(formatDuration(185)).toBe('3 min 5 s');
  });
});
