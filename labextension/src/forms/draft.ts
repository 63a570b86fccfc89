/**
 * The task editor's working copy of a task (a draft), and the task body it saves: one
 * form's data per part of the task.
 */
import { ComponentKind, IEntry, ITask, ITaskBody } from '../types';

/** One trigger, job, action or series in the editor: its type and its form's data. */
export interface IDraftEntry {
  /** A key that stays with the entry while others are added and removed. */
  key: number;
  type: string;
  data: { name?: string; when?: string; config: { [key: string]: any } };
  /** Secret config fields the server holds a value for. */
  secrets: string[];
}

export interface ITaskDraft {
  id: number | null;
  revision: number | null;
  general: { name: string; description?: string; enabled?: boolean };
  triggers: IDraftEntry[];
  jobs: IDraftEntry[];
  actions: IDraftEntry[];
  series: IDraftEntry | null;
  settings: { [key: string]: any };
}

let nextKey = 1;

/** A draft entry of `type` with `config` (empty: the form fills the schema's defaults). */
export function newEntry(
  type: string,
  config: { [key: string]: any } = {},
  extra: { name?: string; when?: string } = {}
): IDraftEntry {
  return { key: nextKey++, type, data: { ...extra, config }, secrets: [] };
}

function entryOf(entry: IEntry): IDraftEntry {
  const draft = newEntry(entry.type, { ...(entry.config ?? {}) });
  if (entry.name) {
    draft.data.name = entry.name;
  }
  if (entry.when) {
    draft.data.when = entry.when;
  }
  draft.secrets = entry.secrets ?? [];
  return draft;
}

/** The draft of a stored task, or of a new empty one. */
export function draftFromTask(task?: ITask | null): ITaskDraft {
  if (!task) {
    return {
      id: null,
      revision: null,
      general: { name: '', description: '', enabled: true },
      triggers: [],
      jobs: [],
      actions: [],
      series: null,
      settings: {}
    };
  }
  return {
    id: task.id,
    revision: task.revision,
    general: {
      name: task.name,
      description: task.description,
      enabled: task.enabled
    },
    triggers: task.triggers.map(entryOf),
    jobs: task.jobs.map(entryOf),
    actions: task.actions.map(entryOf),
    series: task.series ? entryOf(task.series) : null,
    settings: { ...task.settings }
  };
}

/** Drops what the API would read as a value: `undefined` and, for secrets, empty text. */
function cleanConfig(
  config: { [key: string]: any },
  secretFields: string[]
): { [key: string]: any } {
  const clean: { [key: string]: any } = {};
  for (const [key, value] of Object.entries(config ?? {})) {
    if (value === undefined || (secretFields.includes(key) && value === '')) {
      continue; // a secret left empty keeps its stored value
    }
    clean[key] = value;
  }
  return clean;
}

function bodyEntry(
  kind: ComponentKind,
  entry: IDraftEntry,
  secretFields: (kind: ComponentKind, type: string) => string[]
): IEntry {
  const body: IEntry = {
    type: entry.type,
    config: cleanConfig(entry.data.config, secretFields(kind, entry.type))
  };
  if (entry.data.name) {
    body.name = entry.data.name;
  }
  if (kind === 'action' && entry.data.when) {
    body.when = entry.data.when;
  }
  return body;
}

/** The task body to send (`POST /tasks`, `PUT /tasks/{id}` with the revision read). */
export function bodyFromDraft(
  draft: ITaskDraft,
  secretFields: (kind: ComponentKind, type: string) => string[] = () => []
): ITaskBody & { revision?: number } {
  const settings: { [key: string]: any } = {};
  for (const [key, value] of Object.entries(draft.settings)) {
    if (value !== undefined) {
      settings[key] = value;
    }
  }
  const body: ITaskBody & { revision?: number } = {
    name: draft.general.name ?? '',
    description: draft.general.description ?? '',
    enabled: draft.general.enabled ?? true,
    triggers: draft.triggers.map(entry =>
      bodyEntry('trigger', entry, secretFields)
    ),
    jobs: draft.jobs.map(entry => bodyEntry('job', entry, secretFields)),
    actions: draft.actions.map(entry =>
      bodyEntry('action', entry, secretFields)
    ),
    series: draft.series
      ? bodyEntry('series', draft.series, secretFields)
      : null,
    settings
  };
  if (draft.revision !== null) {
    body.revision = draft.revision;
  }
  return body;
}

/** The name of a notebook file without folders and extension. */
export function notebookStem(path: string): string {
  const name = path.split('/').pop() ?? path;
  return name.replace(/\.ipynb$/i, '');
}

/** A new task that executes the notebook at `path` with `parameters` (its defaults). */
export function notebookDraft(
  path: string,
  parameters: { [key: string]: any }
): ITaskDraft {
  const draft = draftFromTask(null);
  draft.general.name = notebookStem(path);
  draft.jobs = [
    newEntry('notebook', { path, parameters }, { name: notebookStem(path) })
  ];
  return draft;
}
