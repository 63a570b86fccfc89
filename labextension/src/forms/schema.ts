/**
 * Form schemas for the task editor, built from the JSON Schemas the server sends: a
 * component's config schema (`GET /components`) and the task's own fields and settings
 * (the OpenAPI document). Nothing here knows a component type by name, so a plugin's
 * component gets its form with no frontend code.
 */
import { ComponentKind, IComponentType, JSONSchema } from '../types';

export type UiSchema = { [key: string]: any };

/** Keywords rjsf's draft-07 validator does not need (or know) in a 2020-12 schema. */
const DROPPED = ['$schema', '$id'];

/**
 * A component's config schema made ready for rjsf: a deep copy without `$schema`/`$id`,
 * where a free-form object (no `properties`) takes any keys, so that it can be edited.
 */
export function formSchema(schema: JSONSchema): JSONSchema {
  const copy: JSONSchema = JSON.parse(JSON.stringify(schema ?? {}));
  const visit = (node: any): void => {
    if (!node || typeof node !== 'object') {
      return;
    }
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    for (const key of DROPPED) {
      delete node[key];
    }
    const isObject =
      node.type === 'object' ||
      (Array.isArray(node.type) && node.type.includes('object'));
    if (
      isObject &&
      !node.properties &&
      node.additionalProperties === undefined
    ) {
      node.additionalProperties = true;
    }
    for (const value of Object.values(node)) {
      visit(value);
    }
  };
  visit(copy);
  return copy;
}

/**
 * The ui schema of a config schema: secrets (`writeOnly`) as password fields that say
 * when a value is stored, read-only and server-made (`x-credential`) fields read-only, the
 * first example as the placeholder.
 */
export function formUiSchema(
  schema: JSONSchema,
  storedSecrets: string[] = [],
  labels: { secretStored: string } = { secretStored: 'stored; type to replace' }
): UiSchema {
  const ui: UiSchema = {};
  for (const [name, field] of Object.entries<JSONSchema>(
    schema?.properties ?? {}
  )) {
    const options: UiSchema = {};
    if (field.writeOnly) {
      options['ui:widget'] = 'password';
      if (storedSecrets.includes(name)) {
        options['ui:placeholder'] = labels.secretStored;
      }
    } else if (
      Array.isArray(field.examples) &&
      typeof field.examples[0] !== 'object'
    ) {
      options['ui:placeholder'] = String(field.examples[0]);
    }
    if (field.readOnly || field['x-credential']) {
      options['ui:readonly'] = true;
    }
    if (field.type === 'object' && field.properties) {
      Object.assign(options, formUiSchema(field, [], labels));
    }
    if (Object.keys(options).length) {
      ui[name] = options;
    }
  }
  return ui;
}

/** The labels of an entry's own fields, translated by the caller. */
export interface IEntryLabels {
  name: string;
  config: string;
  nameHelp: string;
  when: string;
  secretStored: string;
}

/**
 * The schema of one trigger, job, action or series of a task: its optional `name`, an
 * action's `when` (both as the OpenAPI document describes them) and its `config`, the
 * component's own schema.
 */
export function entrySchema(
  kind: ComponentKind,
  component: IComponentType,
  entryFields: JSONSchema,
  labels: IEntryLabels
): JSONSchema {
  const properties: JSONSchema = {
    name: {
      ...(entryFields.name ?? { type: 'string' }),
      title: labels.name,
      description: labels.nameHelp
    }
  };
  if (kind === 'action' && entryFields.when) {
    properties.when = { ...entryFields.when, title: labels.when };
  }
  const config = formSchema(component.schema);
  // The entry's heading names the type; its description is shown there too.
  properties.config = { ...config, type: 'object', title: labels.config };
  delete properties.config.description;
  return { type: 'object', properties };
}

/** The ui schema of an entry form (see `entrySchema`). */
export function entryUiSchema(
  component: IComponentType,
  storedSecrets: string[],
  labels: IEntryLabels
): UiSchema {
  return {
    config: formUiSchema(component.schema, storedSecrets, labels)
  };
}

/** The task's own fields (name, description, enabled) from the OpenAPI `TaskInput`. */
export function generalSchema(
  openapi: JSONSchema,
  titles: { name: string; description: string; enabled: string }
): JSONSchema {
  const fields = openapi?.components?.schemas?.TaskInput?.properties ?? {};
  return {
    type: 'object',
    required: ['name'],
    properties: {
      name: {
        type: 'string',
        minLength: 1,
        ...fields.name,
        title: titles.name
      },
      description: {
        type: 'string',
        ...fields.description,
        title: titles.description
      },
      enabled: {
        type: 'boolean',
        default: true,
        ...fields.enabled,
        title: titles.enabled
      }
    }
  };
}

/** The run settings form: the OpenAPI `Settings` schema, with titles from field names. */
export function settingsSchema(openapi: JSONSchema): JSONSchema {
  const schema = formSchema(
    openapi?.components?.schemas?.Settings ?? { type: 'object' }
  );
  for (const [name, field] of Object.entries<JSONSchema>(
    schema.properties ?? {}
  )) {
    field.title = field.title ?? humanize(name);
  }
  // Left empty, the server picks its own default timezone (not necessarily the document's).
  delete schema.properties?.timezone?.default;
  return schema;
}

/** `misfire_grace` -> `Misfire grace`. */
export function humanize(name: string): string {
  const words = name.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The component types of one kind, by title. */
export function componentsOf(
  components: IComponentType[],
  kind: ComponentKind
): IComponentType[] {
  return components
    .filter(component => component.kind === kind)
    .sort((a, b) => a.title.localeCompare(b.title));
}
