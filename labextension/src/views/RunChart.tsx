import * as React from 'react';

import { TranslationBundle } from '@jupyterlab/translation';

import { axisMax, durationBars, formatDuration } from '../chart';
import { IRun } from '../types';
import { statusLabel } from './common';

const WIDTH = 360;
const HEIGHT = 90;

/** A bar chart of recent run durations, colored by outcome (theme colors). */
export function RunChart(props: {
  runs: IRun[];
  count: number;
  trans: TranslationBundle;
  onSelect: (runId: number) => void;
}) {
  const { runs, count, trans, onSelect } = props;
  const bars = durationBars(runs, count);
  if (!bars.length) {
    return (
      <p className="jp-TaskPlanner-help">
        {trans.__('No finished runs to chart yet.')}
      </p>
    );
  }
  const max = axisMax(bars);
  const slot = WIDTH / Math.max(bars.length, 10);
  return (
    <figure className="jp-TaskPlanner-chart">
      <svg
        role="img"
        aria-label={trans.__(
          'Durations of the last %1 runs; the longest took %2',
          bars.length,
          formatDuration(Math.max(...bars.map(bar => bar.seconds)))
        )}
        viewBox={`0 0 ${WIDTH} ${HEIGHT + 14}`}
        width={WIDTH}
        height={HEIGHT + 14}
      >
        <line
          x1={0}
          x2={WIDTH}
          y1={HEIGHT}
          y2={HEIGHT}
          className="jp-TaskPlanner-axis"
        />
        <text x={2} y={10} className="jp-TaskPlanner-axisLabel">
          {formatDuration(max)}
        </text>
        {bars.map((bar, i) => {
          const height = Math.max(2, (bar.seconds / max) * (HEIGHT - 14));
          return (
            <rect
              key={bar.runId}
              x={i * slot + slot * 0.15}
              y={HEIGHT - height}
              width={slot * 0.7}
              height={height}
              className={`jp-TaskPlanner-bar jp-mod-${bar.status}`}
              onClick={() => onSelect(bar.runId)}
            >
              <title>
                {trans.__(
                  'Run %1: %2, %3',
                  bar.runId,
                  statusLabel(bar.status, trans),
                  formatDuration(bar.seconds)
                )}
              </title>
            </rect>
          );
        })}
      </svg>
      <figcaption className="jp-TaskPlanner-help">
        {trans.__('Run durations, oldest left; color shows the outcome.')}
      </figcaption>
    </figure>
  );
}
