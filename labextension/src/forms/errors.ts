/**
 * Server validation errors placed at their fields. The API names each problem's field as
 * a path (`name`, `settings.timezone`, `triggers[0].config.expression`); the editor has one
 * form for the task's own fields, one for its settings and one per trigger, job, action and
 * series, so a path becomes a form and an rjsf error schema inside it.
 */
import type { IFieldProblem } from '../handler';

export type Section =
  'task' | 'triggers' | 'jobs' | 'actions' | 'series' | 'settings';

/** Where a problem belongs: a form (section and entry index) and a path inside it. */
export interface IFieldTarget {
  section: Section;
  index: number | null;
  path: (string | number)[];
}

const LISTS = ['triggers', 'jobs', 'actions'];

/** The parts of a field path: `jobs[0].config.path` -> `['jobs', 0, 'config', 'path']`. */
export function pathParts(field: string): (string | number)[] {
  const parts: (string | number)[] = [];
  for (const match of field.matchAll(/\[(\d+)\]|([^.[\]]+)/g)) {
    parts.push(match[1] !== undefined ? Number(match[1]) : match[2]);
  }
  return parts;
}

/** The form a field path points into, or null for no field. */
export function parseField(
  field: string | null | undefined
): IFieldTarget | null {
  if (!field) {
    return null;
  }
  const [head, ...rest] = pathParts(field);
  if (
    typeof head === 'string' &&
    LISTS.includes(head) &&
    typeof rest[0] === 'number'
  ) {
    return { section: head as Section, index: rest[0], path: rest.slice(1) };
  }
  if (head === 'series' || head === 'settings') {
    return { section: head, index: null, path: rest };
  }
  return { section: 'task', index: null, path: [head, ...rest] };
}

/** A problem's message without the field path the server puts in front of it. */
export function bareMessage(problem: IFieldProblem): string {
  const prefix = problem.field ? `${problem.field}: ` : '';
  return prefix && problem.message.startsWith(prefix)
    ? problem.message.slice(prefix.length)
    : problem.message;
}

function sameForm(
  target: IFieldTarget,
  section: Section,
  index: number | null
): boolean {
  return (
    target.section === section && (target.index ?? null) === (index ?? null)
  );
}

/** Fields of an entry that are not in its form: the heading shows their problems. */
const ENTRY_LEVEL = ['type', 'version', 'secrets'];

/**
 * The rjsf error schema (`extraErrors`) of one form: for each problem inside it, its
 * message at its field, e.g. `{config: {expression: {__errors: ['...']}}}`.
 */
export function errorSchemaFor(
  problems: IFieldProblem[],
  section: Section,
  index: number | null = null
): { [key: string]: any } {
  const schema: { [key: string]: any } = {};
  for (const problem of problems) {
    const target = parseField(problem.field);
    if (!target || !sameForm(target, section, index) || !target.path.length) {
      continue;
    }
    if (
      section !== 'task' &&
      section !== 'settings' &&
      ENTRY_LEVEL.includes(String(target.path[0]))
    ) {
      continue;
    }
    let node = schema;
    for (const part of target.path) {
      node = node[part] = node[part] ?? {};
    }
    node.__errors = [...(node.__errors ?? []), bareMessage(problem)];
  }
  return schema;
}

/** Problems of an entry as a whole (`jobs[0]`, `jobs[0].type`): shown at its heading. */
export function entryProblems(
  problems: IFieldProblem[],
  section: Section,
  index: number | null = null
): string[] {
  return problems
    .filter(problem => {
      const target = parseField(problem.field);
      return (
        target &&
        sameForm(target, section, index) &&
        (!target.path.length || ENTRY_LEVEL.includes(String(target.path[0])))
      );
    })
    .map(problem => problem.message);
}

/** The task's own fields, in the editor's first form. */
export const GENERAL_FIELDS = ['name', 'description', 'enabled'];

/** Problems no form shows (no field, or an entry the editor does not have). */
export function unplacedProblems(
  problems: IFieldProblem[],
  counts: { triggers: number; jobs: number; actions: number; series: boolean }
): IFieldProblem[] {
  return problems.filter(problem => {
    const target = parseField(problem.field);
    if (!target) {
      return true;
    }
    if (target.section === 'task') {
      return !GENERAL_FIELDS.includes(String(target.path[0]));
    }
    if (target.section === 'settings') {
      return !target.path.length;
    }
    if (target.section === 'series') {
      return !counts.series;
    }
    if (target.index !== null) {
      return (
        target.index >=
        counts[target.section as 'triggers' | 'jobs' | 'actions']
      );
    }
    return false;
  });
}
