"""The task builder: a class per built-in component whose signature is its config schema
(generated from it), plugin components through ``Component``, and JSON round trips."""

from __future__ import annotations

import inspect
import pydoc
import typing
from typing import Any, get_args, get_origin

import pytest

from jupyter_taskplanner.client import Component, Csv, Email, Notebook, Task, Time
from jupyter_taskplanner.client.builder import BUILTINS
from jupyter_taskplanner.client.gen_component_types import TARGET, render
from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.testing import saved_document

REGISTRY = Registry.from_entry_points()
BUILT_IN = sorted(
    (kind, name)
    for (kind, name), cls in REGISTRY._classes.items()
    if cls.__module__.startswith("jupyter_taskplanner.")
)
ENTRY_ARGUMENTS = {"named", "when"}


def literals(annotation: Any) -> set[Any]:
    """The values of the Literal types inside an annotation."""
    if get_origin(annotation) is typing.Literal:
        return set(get_args(annotation))
    found: set[Any] = set()
    for arg in get_args(annotation):
        found |= literals(arg)
    return found


def test_every_builtin_type_has_a_builder() -> None:
    assert sorted(BUILTINS) == BUILT_IN


def test_the_builder_classes_are_generated_from_the_current_schemas() -> None:
    """A changed built-in schema changes its class's arguments and docstring."""
    assert TARGET.read_text() == render(), (
        "regenerate: python -m jupyter_taskplanner.client.gen_component_types"
    )


def test_help_shows_each_argument_and_its_default() -> None:
    text = pydoc.render_doc(Notebook, renderer=pydoc.plaintext)
    assert "Notebook(path: 'str', *, named: 'str | None' = None, parameters:" in text
    assert "Executes a notebook with parameters" in text
    assert "input: live: the notebook as it is when the task runs" in text
    assert "Default: 'live'." in text


@pytest.mark.parametrize(("kind", "type_name"), BUILT_IN)
def test_signature_matches_the_schema(kind: str, type_name: str) -> None:
    builder = BUILTINS[(kind, type_name)]  # type: ignore[index]
    schema = REGISTRY.get(kind, type_name).config_schema
    writable = {
        name for name, prop in schema.get("properties", {}).items() if not prop.get("readOnly")
    }
    parameters = inspect.signature(builder).parameters
    assert set(parameters) - ENTRY_ARGUMENTS == writable
    assert ("when" in parameters) == (kind == "action")
    required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty}
    assert required == set(schema.get("required", []))
    hints = typing.get_type_hints(builder)
    for name, prop in schema["properties"].items():
        if "enum" in prop and name in writable:
            assert literals(hints[name]) == set(prop["enum"]), name
        items = prop.get("items", {})
        if "enum" in items:
            assert literals(hints[name]) == set(items["enum"]), name


def test_the_issue_example_reads_like_a_sentence_and_validates() -> None:
    task = Task(
        "Morning report",
        triggers=[Time(start_date="2026-12-01", time="07:00", repeat="weekdays")],
        jobs=[Notebook("reports/report.ipynb", parameters={"region": "{region}"})],
        actions=[Email(to="{email}", when="all_valid")],
        series=Csv("data/regions.csv"),
    )
    body = task.to_json()
    assert body["actions"] == [{"type": "email", "when": "all_valid", "config": {"to": "{email}"}}]
    assert body["triggers"][0]["config"] == {
        "start_date": "2026-12-01",
        "time": "07:00",
        "repeat": "weekdays",
    }
    # What the server stores reads back as the same classes and the same JSON.
    stored = saved_document(body)
    again = Task.from_json(stored)
    assert [type(part) for part in (*again.triggers, *again.jobs, *again.actions)] == [
        Time,
        Notebook,
        Email,
    ]
    assert isinstance(again.series, Csv)
    assert again.to_json() == {key: stored[key] for key in again.to_json()}


def test_plugin_components_and_server_set_fields_round_trip() -> None:
    inbox = Component("inbox", folder="inbox", named="watch")
    assert inbox.to_json() == {"type": "inbox", "name": "watch", "config": {"folder": "inbox"}}
    assert Component.from_json(inbox.to_json(), "trigger") == inbox
    assert repr(inbox) == "Component('inbox', folder='inbox', named='watch')"
    # A field the server sets (a snapshot) is kept, not offered as an argument.
    entry = {
        "type": "notebook",
        "version": 1,
        "config": {"path": "a.ipynb", "input": "snapshot", "snapshot": "/x/a.123.ipynb"},
    }
    job = Component.from_json(entry, "job")
    assert isinstance(job, Notebook) and job.input == "snapshot"
    assert job.to_json() == entry
    with pytest.raises(TypeError):
        Notebook("a.ipynb", snapshot="/x")  # type: ignore[call-arg]


def test_dates_become_iso_text() -> None:
    from datetime import date

    assert Time(date(2026, 12, 1), "07:00").config == {"start_date": "2026-12-01", "time": "07:00"}
