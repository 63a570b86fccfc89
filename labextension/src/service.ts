import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';

import { PlannerAPI } from './api';
import { IRunEvent, LiveRuns, RunEventStream } from './events';
import { DEFAULT_PREFERENCES, IPreferences, ITaskPlanner } from './tokens';
import { IComponentType, JSONSchema } from './types';

/**
 * The Task Planner service: one per Lab, fed by the planner's run event stream (the user's
 * own runs; an admin's Lab follows every owner's, as its task list shows them all).
 */
export class TaskPlanner implements ITaskPlanner {
  constructor(
    readonly api: PlannerAPI,
    readonly trans: TranslationBundle
  ) {
    this._stream = new RunEventStream({
      settings: api.serverSettings,
      onEvent: event => this.receive(event),
      allOwners: () => this.isAdmin()
    });
    this._stream.start();
  }

  readonly liveRuns = new LiveRuns();
  preferences: IPreferences = { ...DEFAULT_PREFERENCES };
  settings: ISettingRegistry.ISettings | null = null;
  readonly viewerTimezone =
    Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

  get runEvent(): ISignal<ITaskPlanner, IRunEvent> {
    return this._runEvent;
  }

  get preferencesChanged(): ISignal<ITaskPlanner, IPreferences> {
    return this._preferencesChanged;
  }

  /** Use the preferences of `settings`, and follow their changes. */
  useSettings(settings: ISettingRegistry.ISettings): void {
    this.settings = settings;
    const load = (): void => {
      this.preferences = {
        ...DEFAULT_PREFERENCES,
        ...(settings.composite as unknown as Partial<IPreferences>)
      };
      this._preferencesChanged.emit(this.preferences);
    };
    settings.changed.connect(load);
    load();
  }

  components(): Promise<IComponentType[]> {
    this._components =
      this._components ??
      this.api.components().catch(error => {
        this._components = null; // try again next time
        throw error;
      });
    return this._components;
  }

  openapi(): Promise<JSONSchema> {
    this._openapi = this._openapi ?? this.api.openapi();
    return this._openapi;
  }

  isAdmin(): Promise<boolean> {
    this._admin = this._admin ?? this.api.isAdmin();
    return this._admin;
  }

  /** Close the run event stream. */
  dispose(): void {
    this._stream.dispose();
  }

  private receive(event: IRunEvent): void {
    this.liveRuns.apply(event);
    this.liveRuns.prune();
    this._runEvent.emit(event);
  }

  private _stream: RunEventStream;

  private _components: Promise<IComponentType[]> | null = null;
  private _openapi: Promise<JSONSchema> | null = null;
  private _admin: Promise<boolean> | null = null;
  private _runEvent = new Signal<ITaskPlanner, IRunEvent>(this);
  private _preferencesChanged = new Signal<ITaskPlanner, IPreferences>(this);
}
