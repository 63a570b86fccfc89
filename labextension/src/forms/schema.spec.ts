import { describe, expect, it } from 'vitest';

import { IComponentType } from '../types';
import {
  entrySchema,
  formSchema,
  formUiSchema,
  generalSchema,
  settingsSchema
} from './schema';

const labels = {
  name: 'Name',
  config: 'Configuration',
  nameHelp: 'label',
  when: 'When',
  secretStored: 'stored'
};

const plugin: IComponentType = {
  type: 'wordcount',
  kind: 'job',
  title: 'Count words',
  description: 'A plugin job',
  version: 1,
  permission: null,
  runs_code: false,
  schema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    title: 'Count words',
    required: ['path'],
    properties: {
      path: { type: 'string', 'x-path': 'file', examples: ['notes.txt'] },
      token: { type: 'string', writeOnly: true },
      url: { type: 'string', 'x-credential': true },
      extra: { type: 'object' }
    }
  }
};

describe('formSchema', () => {
  it('drops $schema and lets free-form objects take keys', () => {
    const schema = formSchema(plugin.schema);
    expect(schema.$schema).toBeUndefined();
    expect(schema.properties.extra.additionalProperties).toBe(true);
    expect(plugin.schema.$schema).toBeDefined(); // a copy
  });
});

describe('formUiSchema', () => {
  it('makes secrets password fields and credentials read-only', () => {
    const ui = formUiSchema(plugin.schema, ['token'], labels);
    expect(ui.token).toEqual({
      'ui:widget': 'password',
      'ui:placeholder': 'stored'
    });
    expect(ui.url['ui:readonly']).toBe(true);
    expect(ui.path['ui:placeholder']).toBe('notes.txt');
  });
});

describe('entrySchema', () => {
  it("wraps any component's schema as the entry's config", () => {
    const schema = entrySchema(
      'job',
      plugin,
      { name: { type: 'string', maxLength: 200 } },
      labels
    );
    expect(Object.keys(schema.properties)).toEqual(['name', 'config']);
    expect(schema.properties.config.required).toEqual(['path']);
    expect(schema.properties.config.title).toBe('Configuration');
  });

  it("gives actions their 'when'", () => {
    const when = { type: 'string', enum: ['always', 'any_valid'] };
    const schema = entrySchema(
      'action',
      { ...plugin, kind: 'action' },
      { when },
      labels
    );
    expect(schema.properties.when.enum).toEqual(when.enum);
  });
});

describe('task schemas from the OpenAPI document', () => {
  const openapi = {
    components: {
      schemas: {
        TaskInput: { properties: { name: { type: 'string', maxLength: 200 } } },
        Settings: {
          type: 'object',
          properties: { misfire_grace: { type: ['number', 'null'] } }
        }
      }
    }
  };

  it('takes name, description and enabled', () => {
    const schema = generalSchema(openapi, {
      name: 'N',
      description: 'D',
      enabled: 'E'
    });
    expect(schema.properties.name).toMatchObject({
      maxLength: 200,
      title: 'N'
    });
    expect(schema.required).toEqual(['name']);
  });

  it('titles the settings', () => {
    expect(settingsSchema(openapi).properties.misfire_grace.title).toBe(
      'Misfire grace'
    );
  });
});
