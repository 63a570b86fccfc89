import { Contents } from '@jupyterlab/services';

import { PlannerAPI } from './api';

/** The result files Lab opens itself: executed notebooks and HTML reports. */
export function opensInLab(path: string): boolean {
  return /\.(ipynb|html?)$/i.test(path);
}

/** Where a run's result file is copied in the user's files to open it in Lab. */
export function resultCopyPath(
  folder: string,
  runId: number,
  path: string
): string {
  const name = path.split('/').pop() ?? path;
  return [folder.replace(/^\/+|\/+$/g, ''), `run-${runId}`, name]
    .filter(Boolean)
    .join('/');
}

/**
 * Copy a run's result file into `folder` of the user's files (result files live in the
 * planner's data folder, which Lab's file browser does not reach); the copy's path.
 */
export async function copyResult(
  api: PlannerAPI,
  contents: Contents.IManager,
  folder: string,
  runId: number,
  path: string
): Promise<string> {
  const text = await api.fileText(runId, path);
  const target = resultCopyPath(folder, runId, path);
  const parts = target.split('/');
  for (let depth = 1; depth < parts.length; depth++) {
    await contents.save(parts.slice(0, depth).join('/'), { type: 'directory' });
  }
  if (/\.ipynb$/i.test(path)) {
    await contents.save(target, {
      type: 'notebook',
      format: 'json',
      content: JSON.parse(text)
    });
  } else {
    await contents.save(target, {
      type: 'file',
      format: 'text',
      content: text
    });
  }
  return target;
}
