import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { PlannerAPI } from '../api';
import { TaskPlanner } from '../service';
import { EXTENSION_ID, ITaskPlanner } from '../tokens';

/** The Task Planner service: the REST API, the planner's run event stream, preferences. */
export const plannerPlugin: JupyterFrontEndPlugin<ITaskPlanner> = {
  id: `${EXTENSION_ID}:planner`,
  description:
    'The Task Planner service: its REST API, run events and UI preferences.',
  autoStart: true,
  provides: ITaskPlanner,
  optional: [ITranslator, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator | null,
    settingRegistry: ISettingRegistry | null
  ): ITaskPlanner => {
    const trans = (translator ?? nullTranslator).load('jupyter_taskplanner');
    const { serviceManager } = app;
    const planner = new TaskPlanner(
      new PlannerAPI(serviceManager.serverSettings),
      trans
    );
    if (settingRegistry) {
      settingRegistry
        .load(plannerPlugin.id)
        .then(settings => planner.useSettings(settings))
        .catch(reason =>
          console.error('Task Planner: cannot load its settings.', reason)
        );
    }
    return planner;
  }
};
