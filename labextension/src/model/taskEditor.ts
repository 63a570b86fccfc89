import { ISignal, Signal } from '@lumino/signaling';

import {
  bodyFromDraft,
  draftFromTask,
  IDraftEntry,
  ITaskDraft,
  newEntry
} from '../forms/draft';
import { IFieldProblem, PlannerError } from '../handler';
import { ITaskPlanner } from '../tokens';
import { ComponentKind, IComponentType, ITask, JSONSchema } from '../types';

/** The lists of a draft, by component kind. */
export const LIST_OF: {
  [kind in 'trigger' | 'job' | 'action']: 'triggers' | 'jobs' | 'actions';
} = {
  trigger: 'triggers',
  job: 'jobs',
  action: 'actions'
};

/**
 * The task editor: a draft of a new or stored task, the component types and schemas its
 * forms are built from, and the problems the server found when it was last saved.
 */
export class TaskEditorModel {
  constructor(
    readonly planner: ITaskPlanner,
    draft?: ITaskDraft
  ) {
    this.draft = draft ?? draftFromTask(null);
  }

  draft: ITaskDraft;
  components: IComponentType[] = [];
  openapi: JSONSchema = {};
  problems: IFieldProblem[] = [];
  /** A message for the whole editor (load failure, save conflict). */
  message: string | null = null;
  saving = false;
  ready = false;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Load the component types, the API document and, for `taskId`, the stored task. */
  async load(taskId?: number): Promise<void> {
    try {
      const [components, openapi, task] = await Promise.all([
        this.planner.components(),
        this.planner.openapi(),
        taskId !== undefined
          ? this.planner.api.getTask(taskId)
          : Promise.resolve(null)
      ]);
      this.components = components;
      this.openapi = openapi;
      if (task) {
        this.draft = draftFromTask(task);
      }
      this.ready = true;
    } catch (error) {
      this.message = (error as Error).message;
    }
    this._changed.emit();
  }

  component(kind: ComponentKind, type: string): IComponentType | undefined {
    return this.components.find(
      item => item.kind === kind && item.type === type
    );
  }

  /** The fields of an entry of `kind` besides its config (OpenAPI `Trigger`, `Job`, ...). */
  entryFields(kind: ComponentKind): JSONSchema {
    const name = kind.charAt(0).toUpperCase() + kind.slice(1);
    return this.openapi?.components?.schemas?.[name]?.properties ?? {};
  }

  update(change: (draft: ITaskDraft) => void): void {
    const draft = { ...this.draft };
    change(draft);
    this.draft = draft;
    this._changed.emit();
  }

  add(kind: ComponentKind, type: string): void {
    this.update(draft => {
      if (kind === 'series') {
        draft.series = newEntry(type);
      } else {
        draft[LIST_OF[kind]] = [...draft[LIST_OF[kind]], newEntry(type)];
      }
    });
  }

  remove(kind: ComponentKind, key: number): void {
    this.update(draft => {
      if (kind === 'series') {
        draft.series = null;
      } else {
        draft[LIST_OF[kind]] = draft[LIST_OF[kind]].filter(
          entry => entry.key !== key
        );
      }
    });
  }

  /** Replace the form data of the entry with `key` (a new object, for React). */
  setEntryData(
    kind: ComponentKind,
    key: number,
    data: IDraftEntry['data']
  ): void {
    const replace = (entry: IDraftEntry): IDraftEntry =>
      entry.key === key ? { ...entry, data } : entry;
    this.update(draft => {
      if (kind === 'series') {
        draft.series = draft.series ? replace(draft.series) : null;
      } else {
        draft[LIST_OF[kind]] = draft[LIST_OF[kind]].map(replace);
      }
    });
  }

  /** Secret (`writeOnly`) config fields of a type. */
  secretFields(kind: ComponentKind, type: string): string[] {
    const properties = this.component(kind, type)?.schema?.properties ?? {};
    return Object.keys(properties).filter(name => properties[name].writeOnly);
  }

  /** Save the draft (create or replace); the saved task, or null with `problems` set. */
  async save(): Promise<ITask | null> {
    this.saving = true;
    this.message = null;
    this._changed.emit();
    const body = bodyFromDraft(this.draft, (kind, type) =>
      this.secretFields(kind, type)
    );
    try {
      const task =
        this.draft.id === null
          ? await this.planner.api.createTask(body)
          : await this.planner.api.updateTask(this.draft.id, body);
      this.draft = draftFromTask(task);
      this.problems = [];
      return task;
    } catch (error) {
      if (error instanceof PlannerError && error.response.status === 400) {
        this.problems = error.allProblems;
      } else {
        this.problems = [];
        this.message = (error as Error).message;
      }
      return null;
    } finally {
      this.saving = false;
      this._changed.emit();
    }
  }

  private _changed = new Signal<this, void>(this);
}
