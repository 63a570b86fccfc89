import { describe, expect, it } from 'vitest';

import {
  entryProblems,
  errorSchemaFor,
  parseField,
  pathParts,
  unplacedProblems
} from './errors';

const problems = [
  {
    field: 'triggers[0].config.expression',
    message:
      "triggers[0].config.expression: the minute field '61' is not valid (allowed: 0-59)"
  },
  {
    field: 'jobs[1].type',
    message: "jobs[1].type: unknown job type 'notbook'"
  },
  { field: 'name', message: 'name: must not be empty' },
  {
    field: 'settings.timezone',
    message: 'settings.timezone: unknown timezone'
  },
  {
    field: 'jobs[0].config.formats[1]',
    message: "jobs[0].config.formats[1]: 'doc' is not one of"
  },
  { field: null, message: 'something about the whole task' }
];

describe('field paths', () => {
  it('splits names and indices', () => {
    expect(pathParts('jobs[0].config.formats[1]')).toEqual([
      'jobs',
      0,
      'config',
      'formats',
      1
    ]);
  });

  it('finds the form of a field', () => {
    expect(parseField('triggers[2].config.expression')).toEqual({
      section: 'triggers',
      index: 2,
      path: ['config', 'expression']
    });
    expect(parseField('settings.timeout')).toEqual({
      section: 'settings',
      index: null,
      path: ['timeout']
    });
    expect(parseField('name')).toEqual({
      section: 'task',
      index: null,
      path: ['name']
    });
    expect(parseField(null)).toBeNull();
  });
});

describe('errorSchemaFor', () => {
  it('puts a message at its field, without the path prefix', () => {
    expect(errorSchemaFor(problems, 'triggers', 0)).toEqual({
      config: {
        expression: {
          __errors: ["the minute field '61' is not valid (allowed: 0-59)"]
        }
      }
    });
  });

  it('keeps each form to its own problems', () => {
    expect(errorSchemaFor(problems, 'triggers', 1)).toEqual({});
    expect(errorSchemaFor(problems, 'task')).toEqual({
      name: { __errors: ['must not be empty'] }
    });
    expect(errorSchemaFor(problems, 'settings')).toEqual({
      timezone: { __errors: ['unknown timezone'] }
    });
    expect(errorSchemaFor(problems, 'jobs', 0)).toEqual({
      config: { formats: { 1: { __errors: ["'doc' is not one of"] } } }
    });
  });

  it('leaves entry-level problems to the heading', () => {
    expect(errorSchemaFor(problems, 'jobs', 1)).toEqual({});
    expect(entryProblems(problems, 'jobs', 1)).toEqual([
      "jobs[1].type: unknown job type 'notbook'"
    ]);
  });
});

describe('unplacedProblems', () => {
  it('lists problems without a form', () => {
    const left = unplacedProblems(problems, {
      triggers: 1,
      jobs: 1,
      actions: 0,
      series: false
    });
    expect(left.map(problem => problem.field)).toEqual(['jobs[1].type', null]);
  });
});
