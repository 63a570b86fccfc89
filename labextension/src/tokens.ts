import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { TranslationBundle } from '@jupyterlab/translation';
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import { PlannerAPI } from './api';
import { IRunEvent, LiveRuns } from './events';
import { IComponentType, JSONSchema } from './types';

/** The id prefix of the extension's plugins (the npm package name). */
export const EXTENSION_ID = 'jupyter-taskplanner';

/** Commands of the Task Planner. */
export namespace CommandIDs {
  export const openList = 'taskplanner:open';
  export const newTask = 'taskplanner:new-task';
  export const openTask = 'taskplanner:open-task';
  export const editTask = 'taskplanner:edit-task';
  export const runTask = 'taskplanner:run-task';
  export const scheduleNotebook = 'taskplanner:schedule-notebook';
  export const scheduleFile = 'taskplanner:schedule-file';
}

/** The UI preferences (schema/planner.json, in the Settings Editor). */
export interface IPreferences {
  pageSize: number;
  logTailBytes: number;
  chartRuns: number;
  nextFireCount: number;
  showViewerTime: boolean;
  resultsFolder: string;
}

export const DEFAULT_PREFERENCES: IPreferences = {
  pageSize: 20,
  logTailBytes: 65536,
  chartRuns: 20,
  nextFireCount: 3,
  showViewerTime: true,
  resultsFolder: 'taskplanner-results'
};

/** What the Task Planner's plugins share: the API, the run events, preferences, strings. */
export interface ITaskPlanner {
  readonly api: PlannerAPI;
  readonly trans: TranslationBundle;
  readonly preferences: IPreferences;
  /** Emitted when the preferences change. */
  readonly preferencesChanged: ISignal<ITaskPlanner, IPreferences>;
  /** Every run event of the planner's stream (the user's own runs), as it arrives. */
  readonly runEvent: ISignal<ITaskPlanner, IRunEvent>;
  /** The live state of runs seen since Lab started. */
  readonly liveRuns: LiveRuns;
  /** The available component types (fetched once). */
  components(): Promise<IComponentType[]>;
  /** The API's OpenAPI document (fetched once). */
  openapi(): Promise<JSONSchema>;
  /** Whether the user may see every owner's tasks (fetched once). */
  isAdmin(): Promise<boolean>;
  /** The viewer's IANA timezone. */
  readonly viewerTimezone: string;
  settings: ISettingRegistry.ISettings | null;
}

export const ITaskPlanner = new Token<ITaskPlanner>(
  'jupyter-taskplanner:ITaskPlanner',
  'The Task Planner: its API, run events and preferences.'
);
