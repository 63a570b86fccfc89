import { describe, expect, it } from 'vitest';

import {
  notebookParameters,
  parametersOfSource,
  pythonLiteral
} from './notebook';

describe('notebook parameters', () => {
  it('reads Python literals', () => {
    expect(pythonLiteral("'north'")).toBe('north');
    expect(pythonLiteral('3')).toBe(3);
    expect(pythonLiteral('2.5')).toBe(2.5);
    expect(pythonLiteral('True')).toBe(true);
    expect(pythonLiteral('None')).toBeNull();
    expect(pythonLiteral('[1, 2]')).toBe('[1, 2]');
  });

  it('takes top-level assignments, not comparisons, comments or indented lines', () => {
    const source = [
      'region = "north"  # the region',
      'limit: int = 10',
      'if limit == 3:',
      '    hidden = 1',
      'tag = "#1"',
      '# note = 2'
    ].join('\n');
    expect(parametersOfSource(source)).toEqual({
      region: 'north',
      limit: 10,
      tag: '#1'
    });
  });

  it("finds the cell tagged 'parameters'", () => {
    const notebook = {
      cells: [
        { cell_type: 'code', source: 'x = 1', metadata: {} },
        {
          cell_type: 'code',
          source: ['region = "south"\n', 'day = 1'],
          metadata: { tags: ['parameters'] }
        }
      ]
    };
    expect(notebookParameters(notebook)).toEqual({ region: 'south', day: 1 });
    expect(notebookParameters({ cells: [] })).toEqual({});
  });
});
