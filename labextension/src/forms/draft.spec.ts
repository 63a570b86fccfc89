import { describe, expect, it } from 'vitest';

import { ITask } from '../types';
import { bodyFromDraft, draftFromTask, notebookDraft } from './draft';

const task: ITask = {
  id: 3,
  owner: 'alice',
  created: '',
  updated: '',
  revision: 7,
  name: 'Mail',
  description: '',
  enabled: false,
  triggers: [{ type: 'cron', version: 1, config: { expression: '0 7 * * *' } }],
  jobs: [],
  actions: [
    {
      type: 'email',
      when: 'all_valid',
      version: 1,
      config: { to: 'a@b' },
      secrets: ['password']
    }
  ],
  series: null,
  settings: { timezone: 'UTC', retries: 0 }
};

describe('drafts', () => {
  it('round-trips a task to the body the API takes', () => {
    const body = bodyFromDraft(draftFromTask(task));
    expect(body).toEqual({
      name: 'Mail',
      description: '',
      enabled: false,
      triggers: [{ type: 'cron', config: { expression: '0 7 * * *' } }],
      jobs: [],
      actions: [{ type: 'email', when: 'all_valid', config: { to: 'a@b' } }],
      series: null,
      settings: { timezone: 'UTC', retries: 0 },
      revision: 7
    });
  });

  it('leaves out empty secrets so the stored ones are kept', () => {
    const draft = draftFromTask(task);
    draft.actions[0].data.config.password = '';
    const body = bodyFromDraft(draft, (kind, type) =>
      kind === 'action' && type === 'email' ? ['password'] : []
    );
    expect(body.actions[0].config).toEqual({ to: 'a@b' });
  });

  it('makes a notebook task with its parameters', () => {
    const draft = notebookDraft('reports/sales.ipynb', { region: 'north' });
    const body = bodyFromDraft(draft);
    expect(body.name).toBe('sales');
    expect(body.jobs).toEqual([
      {
        type: 'notebook',
        name: 'sales',
        config: { path: 'reports/sales.ipynb', parameters: { region: 'north' } }
      }
    ]);
    expect(body.revision).toBeUndefined();
  });
});
