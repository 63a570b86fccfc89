"""``Composer``: a panel to write a task (triggers, jobs, actions, a series) from the forms of
the installed component types, save, update or copy it, and preview its next starts."""

from __future__ import annotations

import re
from html import escape
from typing import Any

import ipywidgets as w
from traitlets import Dict, Instance, Int, List, observe

from ..client import PlannerError, Task, TaskPlanner
from ..client.api import ComponentType
from .forms import SchemaForm

KINDS = ("trigger", "job", "action", "series")
LISTS = {"trigger": "triggers", "job": "jobs", "action": "actions", "series": "series"}
WHEN = ["always", "any_valid", "all_valid", "none_valid"]
# "jobs[0].config.path" -> ("jobs", "0", "path"); "series.config.path" -> ("series", None, ...)
FIELD = re.compile(
    r"^(?P<list>triggers|jobs|actions|series)(\[(?P<index>\d+)\])?(\.config\.?(?P<path>.*)|.*)$"
)


class ComponentEditor(w.VBox):
    """One trigger, job, action or series of the task: its type's form, a name, for an
    action when it executes, and a remove button."""

    form = Instance(SchemaForm, help="The config form of the component's type.")
    named = Instance(w.Text, help="The component's name in the task (optional).")
    when = Instance(w.Dropdown, allow_none=True, help="When an action executes.")
    remove = Instance(w.Button, help="Removes the component from the task.")
    error = Instance(w.HTML, help="A problem of the component as a whole.")

    def __init__(self, kind: str, component: ComponentType) -> None:
        self.kind = kind
        when = (
            w.Dropdown(options=WHEN, value="always", description="when")
            if kind == "action"
            else None
        )
        super().__init__(
            form=SchemaForm(component["type"], component["schema"]),
            named=w.Text(description="name", placeholder="optional"),
            when=when,
            remove=w.Button(description="Remove", icon="trash", button_style="warning"),
            error=w.HTML(""),
        )
        title = escape(component["title"] or component["type"])
        title = f"<b>{title}</b> <code>{escape(component['type'])}</code>"
        head = [w.HTML(title), self.named, *([when] if when else []), self.remove]
        self.children = (w.HBox(head), self.error, self.form)
        self.layout.border = "1px solid #ddd"
        self.layout.padding = "4px"

    @property
    def value(self) -> dict[str, Any]:
        """The component's entry as the REST API takes it."""
        entry: dict[str, Any] = {"type": self.form.type_name, "config": self.form.value}
        if self.named.value:
            entry["name"] = self.named.value
        if self.when is not None:
            entry["when"] = self.when.value
        return entry

    @value.setter
    def value(self, entry: dict[str, Any]) -> None:
        self.form.value = dict(entry.get("config") or {})
        self.named.value = entry.get("name") or ""
        if self.when is not None:
            self.when.value = entry.get("when", "always")


class Composer(w.VBox):
    """Write a task from the component types the server offers (plugins' included): add
    components by type, fill their generated forms, save, update or copy; server validation
    errors appear at the field they name; ``next_fires`` previews the saved task's starts."""

    task_id = Int(None, allow_none=True, help="The stored task being edited, or None for new.")
    saved = Dict(help="The task as the server stored it on the last save, update or copy.")
    revision = Int(None, allow_none=True, help="Its revision when loaded (for conflicts).")
    editors = Dict(help="kind -> the ComponentEditors of that kind, in task order.")
    name = Instance(w.Text)
    description = Instance(w.Textarea)
    enabled = Instance(w.Checkbox)
    name_error = Instance(w.HTML)
    adders = Dict(help="kind -> the type Dropdown to add a component of that kind.")
    add_buttons = Dict(help="kind -> the button adding a component of the chosen type.")
    save = Instance(w.Button)
    copy = Instance(w.Button)
    new = Instance(w.Button)
    preview = Instance(w.Button)
    next_fires = Instance(w.HTML, help="The next starts of the saved task.")
    status = Instance(w.HTML, help="What the last action did, or the problems no field took.")
    sections = List(Instance(w.VBox))

    def __init__(self, client: TaskPlanner | None = None) -> None:
        self.client = client or TaskPlanner()
        # The server's component types, read once: every form is generated from them.
        self.types: dict[tuple[str, str], ComponentType] = {
            (c["kind"], c["type"]): c for c in self.client.components()
        }
        adders = {
            kind: w.Dropdown(
                options=sorted(t for k, t in self.types if k == kind), description=f"add {kind}"
            )
            for kind in KINDS
        }
        super().__init__(
            editors={kind: [] for kind in KINDS},
            name=w.Text(description="Name", layout=w.Layout(width="60%")),
            description=w.Textarea(description="Description", layout=w.Layout(width="60%")),
            enabled=w.Checkbox(value=True, description="enabled"),
            name_error=w.HTML(""),
            adders=adders,
            add_buttons={kind: w.Button(description="Add", icon="plus") for kind in KINDS},
            save=w.Button(description="Save", button_style="primary", icon="save"),
            copy=w.Button(description="Copy", icon="copy", disabled=True),
            new=w.Button(description="New task", icon="file"),
            preview=w.Button(description="Next starts", icon="clock-o", disabled=True),
            next_fires=w.HTML(""),
            status=w.HTML(""),
            sections=[w.VBox() for _ in KINDS],
        )
        for kind, button in self.add_buttons.items():
            button.on_click(lambda _, kind=kind: self.add(kind, self.adders[kind].value))
        self.save.on_click(lambda _: self._save(copy=False))
        self.copy.on_click(lambda _: self._save(copy=True))
        self.new.on_click(lambda _: self.load(None))
        self.preview.on_click(lambda _: self.show_next_fires())
        rows: list[w.Widget] = [self.name, self.name_error, self.description, self.enabled]
        for kind, section in zip(KINDS, self.sections, strict=True):
            rows += [w.HTML(f"<h4>{LISTS[kind].capitalize()}</h4>"), section]
            rows.append(w.HBox([adders[kind], self.add_buttons[kind]]))
        rows += [
            w.HBox([self.save, self.copy, self.new, self.preview]),
            self.status,
            self.next_fires,
        ]
        self.children = rows

    # -- editing -----------------------------------------------------------------------------

    def add(
        self, kind: str, type_name: str, entry: dict[str, Any] | None = None
    ) -> ComponentEditor:
        """Add a component of a type (with an entry's values); its editor."""
        editor = ComponentEditor(kind, self.types[(kind, type_name)])
        if entry is not None:
            editor.value = entry
        editor.remove.on_click(lambda _: self._remove(kind, editor))
        if kind == "series":
            self.editors = {**self.editors, kind: [editor]}
        else:
            self.editors = {**self.editors, kind: [*self.editors[kind], editor]}
        return editor

    def _remove(self, kind: str, editor: ComponentEditor) -> None:
        self.editors = {**self.editors, kind: [e for e in self.editors[kind] if e is not editor]}

    @observe("editors")
    def _show_editors(self, change: dict[str, Any]) -> None:
        for kind, section in zip(KINDS, self.sections, strict=True):
            section.children = tuple(self.editors[kind])

    @observe("task_id")
    def _task_changed(self, change: dict[str, Any]) -> None:
        stored = change["new"] is not None
        self.save.description = "Update" if stored else "Save"
        self.copy.disabled = not stored
        self.preview.disabled = not stored
        self.next_fires.value = ""

    @property
    def value(self) -> dict[str, Any]:
        """The task document the panel shows."""
        series = self.editors["series"]
        return {
            "name": self.name.value,
            "description": self.description.value,
            "enabled": self.enabled.value,
            "triggers": [e.value for e in self.editors["trigger"]],
            "jobs": [e.value for e in self.editors["job"]],
            "actions": [e.value for e in self.editors["action"]],
            "series": series[0].value if series else None,
        }

    def load(self, task: Task | dict[str, Any] | int | None) -> None:
        """Edit a stored task (its record, a ``Task``, or its id), or start anew with None."""
        if isinstance(task, int):
            task = dict(self.client.get_task(task))
        document = task.to_json() if isinstance(task, Task) else (task or {})
        self.editors = {kind: [] for kind in KINDS}
        self.name.value = document.get("name", "")
        self.description.value = document.get("description", "")
        self.enabled.value = document.get("enabled", True)
        for kind in ("trigger", "job", "action"):
            for entry in document.get(LISTS[kind], []):
                self.add(kind, entry["type"], entry)
        if document.get("series"):
            self.add("series", document["series"]["type"], document["series"])
        stored_id = task.id if isinstance(task, Task) else document.get("id")
        self.task_id = stored_id
        self.revision = task.revision if isinstance(task, Task) else document.get("revision")
        self._clear_errors()
        self.status.value = ""

    # -- talking to the server ---------------------------------------------------------------

    def _save(self, *, copy: bool) -> None:
        self._clear_errors()
        try:
            if self.task_id is None:
                record = self.client.create_task(self.value)
                verb = "saved"
            elif copy:
                # The server copies the stored task, secrets included, which the form lacks.
                record = self.client.copy_task(self.task_id)
                verb = "copied"
            else:
                record = self.client.replace_task(self.task_id, self.value, revision=self.revision)
                verb = "updated"
        except PlannerError as exc:
            self.show_errors(exc)
            return
        self.load(dict(record))
        self.saved = dict(record)
        self.status.value = f"Task {record['id']} {escape(record['name'])!s} {verb}."
        self.show_next_fires()

    def show_next_fires(self) -> None:
        """Show the saved task's next starts (server time)."""
        if self.task_id is None:
            return
        fires = self.client.next_fires(self.task_id, count=5)
        items = "".join(
            f"<li>{escape(f['server_time'])} ({escape(f['type'])})</li>" for f in fires["next"]
        )
        off = "" if fires["enabled"] else " (disabled: they will not start it)"
        self.next_fires.value = f"<b>Next starts{off}:</b><ul>{items or '<li>none</li>'}</ul>"

    def _clear_errors(self) -> None:
        self.name_error.value = ""
        for editors in self.editors.values():
            for editor in editors:
                editor.error.value = ""
                editor.form.show_errors({})

    def show_errors(self, error: PlannerError) -> None:
        """Put each problem the server named at its field; the rest go to ``status``."""
        left: list[str] = []
        by_editor: dict[int, tuple[ComponentEditor, dict[str, str]]] = {}
        for problem in error.errors:
            where, message = problem.get("field") or "", str(problem["message"])
            # At its field the message need not repeat where it is.
            message = message.removeprefix(f"{where}: ") if where else message
            found = FIELD.match(where)
            kind = next((k for k, name in LISTS.items() if found and found["list"] == name), None)
            index = int(found["index"]) if found and found["index"] else 0
            if where == "name":
                self.name_error.value = (
                    f"<span style='color:#c62828'>{escape(message, quote=False)}</span>"
                )
            elif found and kind and index < len(self.editors[kind]):
                editor = self.editors[kind][index]
                if found["path"]:
                    by_editor.setdefault(id(editor), (editor, {}))[1][found["path"]] = message
                else:
                    editor.error.value = (
                        f"<span style='color:#c62828'>{escape(message, quote=False)}</span>"
                    )
            else:
                left.append(message)
        for editor, errors in by_editor.values():
            left += editor.form.show_errors(errors)
        problems = "".join(f"<li>{escape(m)}</li>" for m in left)
        self.status.value = f"<span style='color:#c62828'>Not saved.</span><ul>{problems}</ul>"
