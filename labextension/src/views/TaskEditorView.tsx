import * as React from 'react';

import {
  FormComponent,
  ReactWidget,
  UseSignal
} from '@jupyterlab/ui-components';
import { ITranslator } from '@jupyterlab/translation';
import validator from '@rjsf/validator-ajv8';

import { IDraftEntry } from '../forms/draft';
import {
  Section,
  entryProblems,
  errorSchemaFor,
  unplacedProblems
} from '../forms/errors';
import {
  IEntryLabels,
  componentsOf,
  entrySchema,
  entryUiSchema,
  generalSchema,
  settingsSchema
} from '../forms/schema';
import { LIST_OF, TaskEditorModel } from '../model/taskEditor';
import { ComponentKind } from '../types';
import { Alert } from './common';
import { labelFormInputs } from './labelInputs';

const FORM_CONTEXT = { defaultFormData: {} };

/** One schema-driven form of the editor (Lab's `FormComponent`, validated by the server). */
function SchemaForm(props: {
  idPrefix: string;
  schema: any;
  uiSchema?: any;
  formData: any;
  errors: any;
  translator: ITranslator;
  onChange: (data: any) => void;
}) {
  const ref = React.useRef<HTMLDivElement>(null);
  React.useEffect(() => {
    if (ref.current) {
      labelFormInputs(ref.current);
    }
  });
  return (
    <div ref={ref} className="jp-TaskPlanner-form" data-form={props.idPrefix}>
      <FormComponent
        idPrefix={props.idPrefix}
        schema={props.schema}
        uiSchema={props.uiSchema ?? {}}
        formData={props.formData}
        formContext={FORM_CONTEXT}
        // rjsf types the validator by form data; FormComponent fixes that to JSON objects.
        validator={validator as any}
        noValidate={true}
        noHtml5Validate={true}
        showErrorList={false}
        extraErrors={props.errors}
        tagName="div"
        translator={props.translator}
        onChange={event => props.onChange(event.formData)}
      />
    </div>
  );
}

const SECTIONS: { kind: ComponentKind; section: Section }[] = [
  { kind: 'trigger', section: 'triggers' },
  { kind: 'job', section: 'jobs' },
  { kind: 'action', section: 'actions' },
  { kind: 'series', section: 'series' }
];

/** Adds an entry of a chosen type to a section. */
function AddEntry(props: {
  model: TaskEditorModel;
  kind: ComponentKind;
  label: string;
}) {
  const { model, kind, label } = props;
  const choices = componentsOf(model.components, kind);
  const [type, setType] = React.useState(choices[0]?.type ?? '');
  const id = `tp-add-${kind}`;
  return (
    <div className="jp-TaskPlanner-add">
      <label htmlFor={id}>{label}</label>
      <select
        id={id}
        className="jp-mod-styled"
        value={type}
        onChange={event => setType(event.target.value)}
      >
        {choices.map(component => (
          <option key={component.type} value={component.type}>
            {component.title} ({component.type})
          </option>
        ))}
      </select>
      <button
        className="jp-mod-styled"
        disabled={!type}
        onClick={() => model.add(kind, type)}
      >
        {model.planner.trans.__('Add')}
      </button>
    </div>
  );
}

function Entry(props: {
  model: TaskEditorModel;
  kind: ComponentKind;
  section: Section;
  index: number | null;
  entry: IDraftEntry;
  labels: IEntryLabels;
  translator: ITranslator;
}) {
  const { model, kind, section, index, entry, labels, translator } = props;
  const trans = model.planner.trans;
  const component = model.component(kind, entry.type);
  const heading = entryProblems(model.problems, section, index);
  const where = index === null ? section : `${section}[${index}]`;
  return (
    <fieldset
      className="jp-TaskPlanner-entry"
      data-entry={where}
      data-type={entry.type}
    >
      <legend>
        {component?.title ?? entry.type} <code>{entry.type}</code>
      </legend>
      {component?.description && (
        <p className="jp-TaskPlanner-help">{component.description}</p>
      )}
      {heading.map(message => (
        <p key={message} className="jp-TaskPlanner-fieldError" role="alert">
          {message}
        </p>
      ))}
      {component ? (
        <SchemaForm
          idPrefix={where.replace(/[[\]]/g, '-').replace(/-$/, '')}
          schema={entrySchema(kind, component, model.entryFields(kind), labels)}
          uiSchema={entryUiSchema(component, entry.secrets, labels)}
          formData={entry.data}
          errors={errorSchemaFor(model.problems, section, index)}
          translator={translator}
          onChange={data => model.setEntryData(kind, entry.key, data)}
        />
      ) : (
        <p className="jp-TaskPlanner-fieldError">
          {trans.__('This server has no %1 type "%2".', kind, entry.type)}
        </p>
      )}
      <button
        className="jp-mod-styled jp-mod-warn"
        aria-label={trans.__(
          'Remove %1 %2',
          kind,
          component?.title ?? entry.type
        )}
        onClick={() => model.remove(kind, entry.key)}
      >
        {trans.__('Remove')}
      </button>
    </fieldset>
  );
}

export interface ITaskEditorActions {
  saved(taskId: number): void;
  cancel(): void;
}

/** The task editor: the task's fields, its components and settings, all from schemas. */
export function TaskEditor(props: {
  model: TaskEditorModel;
  translator: ITranslator;
  actions: ITaskEditorActions;
}) {
  const { model, translator, actions } = props;
  const trans = model.planner.trans;
  if (!model.ready) {
    return (
      <div className="jp-TaskPlanner-editor">
        <Alert message={model.message} />
        {!model.message && <p>{trans.__('Loading…')}</p>}
      </div>
    );
  }
  const { draft } = model;
  const labels: IEntryLabels = {
    name: trans.__('Name'),
    config: trans.__('Configuration'),
    nameHelp: trans.__(
      'An optional label, used in placeholders such as {job.<name>.<key>}.'
    ),
    when: trans.__('When'),
    secretStored: trans.__('stored; type to replace')
  };
  const sectionTitles: { [kind: string]: string } = {
    trigger: trans.__('Triggers: what starts the task by itself'),
    job: trans.__('Jobs: what produces results'),
    action: trans.__('Actions: what is done with the results'),
    series: trans.__('Series: parameter sets to run once each')
  };
  const addLabels: { [kind: string]: string } = {
    trigger: trans.__('Add a trigger'),
    job: trans.__('Add a job'),
    action: trans.__('Add an action'),
    series: trans.__('Set the series')
  };
  const unplaced = unplacedProblems(model.problems, {
    triggers: draft.triggers.length,
    jobs: draft.jobs.length,
    actions: draft.actions.length,
    series: draft.series !== null
  });
  const save = async () => {
    const task = await model.save();
    if (task) {
      actions.saved(task.id);
    }
  };
  return (
    <div className="jp-TaskPlanner-editor">
      <h2 className="jp-TaskPlanner-title">
        {draft.id === null
          ? trans.__('New task')
          : trans.__('Edit task %1', draft.id)}
      </h2>
      <Alert message={model.message} />
      {model.problems.length > 0 && (
        <div className="jp-TaskPlanner-alert" role="alert">
          {trans._n(
            'The server refused the task: %1 problem, shown at its field.',
            'The server refused the task: %1 problems, shown at their fields.',
            model.problems.length
          )}
          {unplaced.length > 0 && (
            <ul>
              {unplaced.map(problem => (
                <li key={`${problem.field}:${problem.message}`}>
                  {problem.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <section aria-labelledby="tp-general">
        <h3 id="tp-general">{trans.__('Task')}</h3>
        <SchemaForm
          idPrefix="task"
          schema={generalSchema(model.openapi, {
            name: trans.__('Name'),
            description: trans.__('Description'),
            enabled: trans.__('Enabled')
          })}
          uiSchema={{ description: { 'ui:widget': 'textarea' } }}
          formData={draft.general}
          errors={errorSchemaFor(model.problems, 'task')}
          translator={translator}
          onChange={data => model.update(d => (d.general = data))}
        />
      </section>
      {SECTIONS.map(({ kind, section }) => {
        const entries =
          kind === 'series'
            ? draft.series
              ? [draft.series]
              : []
            : draft[LIST_OF[kind]];
        return (
          <section
            key={kind}
            aria-labelledby={`tp-${section}`}
            data-section={section}
          >
            <h3 id={`tp-${section}`}>{sectionTitles[kind]}</h3>
            {entries.map((entry, index) => (
              <Entry
                key={entry.key}
                model={model}
                kind={kind}
                section={section}
                index={kind === 'series' ? null : index}
                entry={entry}
                labels={labels}
                translator={translator}
              />
            ))}
            {(kind !== 'series' || !draft.series) && (
              <AddEntry model={model} kind={kind} label={addLabels[kind]} />
            )}
          </section>
        );
      })}
      <details
        className="jp-TaskPlanner-settings"
        open={model.problems.some(p => p.field?.startsWith('settings'))}
      >
        <summary>
          {trans.__(
            'Run settings: timeout, overlap, missed schedules, retries, timezone'
          )}
        </summary>
        <SchemaForm
          idPrefix="settings"
          schema={settingsSchema(model.openapi)}
          formData={draft.settings}
          errors={errorSchemaFor(model.problems, 'settings')}
          translator={translator}
          onChange={data => model.update(d => (d.settings = data))}
        />
      </details>
      <div className="jp-TaskPlanner-buttons">
        <button className="jp-mod-styled" onClick={() => actions.cancel()}>
          {trans.__('Close')}
        </button>
        <button
          className="jp-mod-styled jp-mod-accept"
          disabled={model.saving}
          onClick={() => void save()}
        >
          {model.saving ? trans.__('Saving…') : trans.__('Save')}
        </button>
      </div>
    </div>
  );
}

/** The task editor in Lab's main area. */
export class TaskEditorWidget extends ReactWidget {
  constructor(
    readonly model: TaskEditorModel,
    private translator: ITranslator,
    private actions: ITaskEditorActions
  ) {
    super();
    this.addClass('jp-TaskPlanner');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <TaskEditor
            model={this.model}
            translator={this.translator}
            actions={this.actions}
          />
        )}
      </UseSignal>
    );
  }
}
