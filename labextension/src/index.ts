import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { launcherPlugin } from './plugins/launcher';
import { palettePlugin } from './plugins/palette';
import { plannerPlugin } from './plugins/planner';
import { scheduleNotebookPlugin } from './plugins/scheduleNotebook';
import { sidebarPlugin } from './plugins/sidebar';
import { viewsPlugin } from './plugins/views';

export { ITaskPlanner } from './tokens';
export { ITaskPlannerViews } from './plugins/views';

/** The Task Planner inside JupyterLab: one plugin per feature. */
const plugins: JupyterFrontEndPlugin<any>[] = [
  plannerPlugin,
  viewsPlugin,
  launcherPlugin,
  palettePlugin,
  sidebarPlugin,
  scheduleNotebookPlugin
];

export default plugins;
