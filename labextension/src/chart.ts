/** The chart of recent run durations and outcomes: one bar per finished run. */
import { IRun } from './types';

export interface IDurationBar {
  runId: number;
  seconds: number;
  status: string;
  started: string;
}

/** Bars for the newest `count` finished runs, oldest first (runs come newest first). */
export function durationBars(runs: IRun[], count: number): IDurationBar[] {
  const bars: IDurationBar[] = [];
  for (const run of runs) {
    if (!run.started || !run.finished) {
      continue;
    }
    const seconds = (Date.parse(run.finished) - Date.parse(run.started)) / 1000;
    if (Number.isFinite(seconds)) {
      bars.push({
        runId: run.id,
        seconds: Math.max(0, seconds),
        status: run.status,
        started: run.started
      });
    }
    if (bars.length === count) {
      break;
    }
  }
  return bars.reverse();
}

/** A round upper bound for the chart's axis (1, 2, 5, 10, 20, 50 ... seconds). */
export function axisMax(bars: IDurationBar[]): number {
  const longest = Math.max(0, ...bars.map(bar => bar.seconds));
  let step = 1;
  for (;;) {
    for (const factor of [1, 2, 5]) {
      if (longest <= step * factor) {
        return step * factor;
      }
    }
    step *= 10;
  }
}

/** A duration as people read it: `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 1 min`. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${Math.round(seconds % 60)} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
