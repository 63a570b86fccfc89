import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M19 4h-1V2h-2v2H8V2H6v2H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h6.1a7 7 0 0 1-1.4-2H5V9h14v1.1a7 7 0 0 1 2 1.4V6a2 2 0 0 0-2-2z"/>
  <path class="jp-icon3" fill="#616161" d="M17 12a5 5 0 1 0 0 10 5 5 0 0 0 0-10zm1.8 7.2L16.3 17.5V14h1.4v2.8l2 1.3z"/>
</svg>`;

/** The Task Planner's icon (launcher, sidebar, tabs), colored by the Lab theme. */
export const plannerIcon = new LabIcon({
  name: 'jupyter-taskplanner:planner',
  svgstr: svg
});
