"""Forms generated from a component's JSON Schema, once per type: a field per config property
(title, description, default, enum, format), with room for the server's error at each."""

from __future__ import annotations

import json
from html import escape
from typing import Any

import ipywidgets as w
from traitlets import Dict, Instance, List, Unicode

STATUS_COLORS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#c62828",
    "interrupted": "#c62828",
    "cancelled": "#6d4c41",
    "skipped": "#757575",
    "running": "#1565c0",
    "queued": "#1565c0",
}


def status_html(status: str | None) -> str:
    """A run or step status in its colour."""
    if not status:
        return "<span style='color:#757575'>never run</span>"
    color = STATUS_COLORS.get(status, "#000")
    return f"<b style='color:{color}'>{escape(status)}</b>"


def _kind(schema: dict[str, Any]) -> str:
    """How a property is edited: enum, boolean, integer, number, string, choices or json."""
    if "enum" in schema:
        return "enum"
    items = schema.get("items") or {}
    if schema.get("type") == "array" and "enum" in items:
        return "choices"
    if schema.get("type") in ("boolean", "integer", "number", "string"):
        return str(schema["type"])
    if any(option.get("type") == "string" for option in schema.get("anyOf", [])):
        return "string"  # e.g. mail addresses: a text or a list; the text form is enough here
    return "json"


class Field(w.VBox):
    """One config property: its input, its description, and the server's error for it."""

    name = Unicode(help="The property's name in the config.")
    input = Instance(w.DOMWidget, help="The widget that edits the value.")
    error = Instance(w.HTML, help="The server's message about this field, if any.")

    def __init__(self, name: str, schema: dict[str, Any], required: bool) -> None:
        self.schema = schema
        self.kind = _kind(schema)
        title = schema.get("title") or name
        label = f"{title}{' *' if required else ''}"
        style = {"description_width": "160px"}
        layout = w.Layout(width="95%")
        hint = str(schema.get("description", ""))
        default = schema.get("default")
        control: w.DOMWidget
        if self.kind == "enum":
            options = [("", None)] + [(str(value), value) for value in schema["enum"]]
            control = w.Dropdown(options=options, value=None, description=label, style=style)
        elif self.kind == "choices":
            control = w.SelectMultiple(
                options=schema["items"]["enum"], value=(), description=label, style=style
            )
        elif self.kind == "boolean":
            control = w.Checkbox(value=bool(default), description=label, indent=False)
        elif self.kind == "json":
            control = w.Textarea(description=label, placeholder="JSON", style=style, layout=layout)
        else:
            examples = schema.get("examples") or []
            placeholder = str(examples[0]) if examples else "" if default is None else str(default)
            if schema.get("format") == "date":
                placeholder = placeholder or "YYYY-MM-DD"
            cls = w.Password if schema.get("writeOnly") else w.Text
            control = cls(description=label, placeholder=placeholder, style=style, layout=layout)
        control.tooltip = hint
        error = w.HTML("")
        note = w.HTML(f"<small style='color:#616161'>{escape(hint)}</small>")
        super().__init__(name=name, input=control, error=error, children=[control, note, error])

    @property
    def value(self) -> Any:
        """The value to send, or None when the field is left empty (the server's default)."""
        raw = self.input.value
        if self.kind == "boolean":
            return raw if raw != bool(self.schema.get("default")) else None
        if self.kind == "choices":
            return list(raw) or None
        if self.kind == "enum":
            return raw
        if raw == "":
            return None
        if self.kind == "integer":
            return int(raw) if raw.lstrip("-").isdigit() else raw
        if self.kind == "number":
            try:
                return float(raw)
            except ValueError:
                return raw  # the server names the field and says why
        if self.kind == "json":
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        return raw

    @value.setter
    def value(self, value: Any) -> None:
        control: Any = self.input
        if self.kind == "boolean":
            control.value = bool(self.schema.get("default")) if value is None else bool(value)
        elif self.kind == "choices":
            control.value = tuple(value or ())
        elif self.kind == "enum":
            control.value = value
        elif self.kind == "json":
            control.value = "" if value is None else json.dumps(value)
        elif self.kind == "string" and isinstance(value, list):
            control.value = ", ".join(value)
        else:
            control.value = "" if value is None else str(value)

    def show_error(self, message: str | None) -> None:
        self.error.value = (
            f"<span style='color:#c62828'>{escape(message, quote=False)}</span>" if message else ""
        )


class SchemaForm(w.VBox):
    """The form of a component type's config schema; ``value`` is the config."""

    type_name = Unicode(help="The component type this form edits.")
    fields = List(Instance(Field), help="A field per config property, in schema order.")
    secrets = List(Unicode(), help="Secret fields the stored task holds (left empty here).")
    extra = Dict(help="Config values the form has no field for (set by the server).")

    def __init__(self, type_name: str, schema: dict[str, Any]) -> None:
        required = set(schema.get("required", []))
        fields = [
            Field(name, prop, name in required)
            for name, prop in (schema.get("properties") or {}).items()
            if not prop.get("readOnly")
        ]
        super().__init__(type_name=type_name, fields=fields, children=fields)

    def field(self, name: str) -> Field:
        """The field of one property."""
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    @property
    def value(self) -> dict[str, Any]:
        values = {field.name: field.value for field in self.fields}
        return {**self.extra, **{key: value for key, value in values.items() if value is not None}}

    @value.setter
    def value(self, config: dict[str, Any]) -> None:
        names = {field.name for field in self.fields}
        for field in self.fields:
            field.value = config.get(field.name)
        self.extra = {key: value for key, value in config.items() if key not in names}

    def show_errors(self, errors: dict[str, str]) -> list[str]:
        """Show each message at the field its path names (``path`` or ``condition.glued``);
        returns the messages no field took."""
        left = []
        for field in self.fields:
            field.show_error(None)
        for path, message in errors.items():
            name = path.split(".", 1)[0].split("[", 1)[0]
            try:
                self.field(name).show_error(message)
            except KeyError:
                left.append(message)
        return left
