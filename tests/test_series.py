"""Every series type on real files under a temporary root, and its unhappy paths."""

from __future__ import annotations

import logging
import sqlite3
import sys
import uuid
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components import Registry, RunContext, Series
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.series.files import CsvSeries, DirectorySeries, JsonSeries
from jupyter_taskplanner.series.python import PythonSeries
from jupyter_taskplanner.series.sql import SqlSeries
from jupyter_taskplanner.series.values import ValuesSeries
from jupyter_taskplanner.testing import validate_as_saved


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    root = tmp_path / "root"
    root.mkdir()
    return RunContext(
        owner="alice",
        owner_root=root,
        task_id=1,
        task_name="Mailing",
        run_id=5,
        started=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        output_dir=tmp_path / "output",
        placeholders={"region": "north"},
        log=logging.getLogger("test.series"),
    )


def series(registry: Registry, type_name: str, config: dict[str, Any]) -> Series:
    """A series built the way the server does: validated by the registry first."""
    entry = registry.validate("series", {"type": type_name, "config": config}, "series")
    component = registry.instantiate("series", entry)
    assert isinstance(component, Series)
    return component


def invalid(registry: Registry, type_name: str, config: dict[str, Any]) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(registry, "series", {"type": type_name, "config": config}, "series")
    return caught.value


def failure(component: Series, ctx: RunContext, match: str) -> InvalidConfig:
    """The error that iterating the series' sets raises."""
    with pytest.raises(InvalidConfig, match=match) as caught:
        list(component.sets(ctx))
    return caught.value


def test_registry_lists_every_series_type(registry):
    classes = {cls.type_name: cls for cls in registry.of_kind("series")}
    assert classes == {
        "csv": CsvSeries,
        "directory": DirectorySeries,
        "json": JsonSeries,
        "python": PythonSeries,
        "sql": SqlSeries,
        "values": ValuesSeries,
    }
    for cls in classes.values():
        schema = cls.config_schema
        assert schema["additionalProperties"] is False and schema["required"], cls
        for name, spec in schema["properties"].items():
            assert spec.get("title"), (cls.type_name, name)


def test_values(registry, ctx):
    sets = [{"customer": "ACME", "email": "a@acme.example"}, {"customer": "Umbrella"}]
    component = series(registry, "values", {"values": sets})
    assert list(component.sets(ctx)) == sets
    assert list(component.preview(ctx, 1)) == sets[:1]
    assert invalid(registry, "values", {"values": [{"a": 1}, 2]}).field == "series.config.values.1"
    assert invalid(registry, "values", {}).field == "series.config"
    assert invalid(registry, "values", {"values": [], "extra": 1}).field == "series.config"


def test_csv(registry, ctx):
    # A byte order mark and spaces after commas, as spreadsheets write them.
    (ctx.owner_root / "data").mkdir()
    (ctx.owner_root / "data" / "customers.csv").write_text(
        "\ufeffname, email\nACME,boss@acme.example\n\nUmbrella\n", encoding="utf-8"
    )
    component = series(registry, "csv", {"path": "data/customers.csv"})
    assert list(component.sets(ctx)) == [
        {"name": "ACME", "email": "boss@acme.example"},
        {"name": "Umbrella", "email": ""},
    ]

    (ctx.owner_root / "semi.csv").write_bytes("city;note\nZürich;Grüezi\n".encode("cp1252"))
    component = series(registry, "csv", {"path": "semi.csv", "delimiter": ";"})
    error = failure(component, ctx, r"'semi.csv' is not utf-8 text.*set the file's encoding")
    assert error.field == "encoding"
    component = series(
        registry, "csv", {"path": "semi.csv", "delimiter": ";", "encoding": "cp1252"}
    )
    assert list(component.sets(ctx)) == [{"city": "Zürich", "note": "Grüezi"}]

    (ctx.owner_root / "empty.csv").write_text("")
    assert list(series(registry, "csv", {"path": "empty.csv"}).sets(ctx)) == []


def test_csv_errors(registry, ctx):
    (ctx.owner_root / "long.csv").write_text("a,b\n1,2\n1,2,3\n")
    error = failure(
        series(registry, "csv", {"path": "long.csv"}),
        ctx,
        "line 3 of 'long.csv' has 3 fields but the header has 2",
    )
    assert error.field == "path"
    (ctx.owner_root / "twice.csv").write_text("a,b,a\n1,2,3\n")
    failure(series(registry, "csv", {"path": "twice.csv"}), ctx, r"repeats the column\(s\) \['a'\]")
    error = failure(series(registry, "csv", {"path": "nope.csv"}), ctx, "'nope.csv' does not exist")
    assert error.field == "path"
    failure(series(registry, "csv", {"path": "."}), ctx, "is a folder, not a file")
    error = failure(series(registry, "csv", {"path": "../x.csv"}), ctx, "outside your root folder")
    assert error.field == "path"

    error = invalid(registry, "csv", {"path": "a.csv", "encoding": "klingon"})
    assert error.field == "series.config.encoding" and "'klingon'" in error.message
    assert invalid(registry, "csv", {"path": "a.csv", "delimiter": ";;"}).field == (
        "series.config.delimiter"
    )
    assert invalid(registry, "csv", {"path": ""}).field == "series.config.path"


def test_json_and_json_lines(registry, ctx):
    (ctx.owner_root / "list.json").write_text('[{"id": 1}, {"id": 2, "tags": ["x"]}]')
    assert list(series(registry, "json", {"path": "list.json"}).sets(ctx)) == [
        {"id": 1},
        {"id": 2, "tags": ["x"]},
    ]
    (ctx.owner_root / "lines.jsonl").write_text('{"id": 1}\n\n{"id": 2}\n')
    component = series(registry, "json", {"path": "lines.jsonl"})
    assert list(component.sets(ctx)) == [{"id": 1}, {"id": 2}]
    assert list(component.preview(ctx, 1)) == [{"id": 1}]


def test_json_errors(registry, ctx):
    cases = {
        "broken.json": ('[{"id": 1},', r"'broken.json' is not valid JSON: Expecting value"),
        "object.json": ('{"id": 1}', "must hold a list of objects, not an object"),
        "mixed.json": ('[{"id": 1}, [2]]', "item 1 of 'mixed.json' is an array, not an object"),
        "bad.jsonl": ('{"id": 1}\n{"id": \n', "line 2 of 'bad.jsonl' is not valid JSON"),
        "scalar.jsonl": ('{"id": 1}\n"x"\n', "line 2 of 'scalar.jsonl' is a string, not an obj"),
    }
    for name, (content, message) in cases.items():
        (ctx.owner_root / name).write_text(content)
        assert failure(series(registry, "json", {"path": name}), ctx, message).field == "path"
    failure(series(registry, "json", {"path": "missing.json"}), ctx, "does not exist")
    # Sets before a bad line were already produced: each set is yielded as it is read.
    sets = series(registry, "json", {"path": "scalar.jsonl"}).sets(ctx)
    assert next(sets) == {"id": 1}
    with pytest.raises(InvalidConfig):
        next(sets)


def test_directory(registry, ctx):
    root = ctx.owner_root
    for name in ("in/b.csv", "in/a.csv", "in/notes.txt", "in/sub/c.csv", "in/.hidden.csv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "in" / ".ipynb_checkpoints").mkdir()
    (root / "in" / ".ipynb_checkpoints" / "a-checkpoint.csv").write_text("")
    (root / "in" / "folder.csv").mkdir()

    component = series(registry, "directory", {"path": "in", "pattern": "*.csv"})
    assert list(component.sets(ctx)) == [
        {"path": "in/a.csv", "filename": "a.csv", "stem": "a", "suffix": ".csv"},
        {"path": "in/b.csv", "filename": "b.csv", "stem": "b", "suffix": ".csv"},
    ]
    recursive = series(registry, "directory", {"path": "in", "pattern": "*.csv", "recursive": True})
    assert [item["path"] for item in recursive.sets(ctx)] == [
        "in/a.csv",
        "in/b.csv",
        "in/sub/c.csv",
    ]
    hidden = series(
        registry,
        "directory",
        {"path": "in", "pattern": "*.csv", "recursive": True, "include_hidden": True},
    )
    assert [item["path"] for item in hidden.sets(ctx)] == [
        "in/.hidden.csv",
        "in/.ipynb_checkpoints/a-checkpoint.csv",
        "in/a.csv",
        "in/b.csv",
        "in/sub/c.csv",
    ]
    everything = series(registry, "directory", {"path": "."})
    assert list(everything.sets(ctx)) == []
    assert [item["path"] for item in series(registry, "directory", {"path": "in"}).sets(ctx)] == [
        "in/a.csv",
        "in/b.csv",
        "in/notes.txt",
    ]
    assert len(list(recursive.preview(ctx, 2))) == 2

    error = failure(series(registry, "directory", {"path": "gone"}), ctx, "'gone' does not exist")
    assert error.field == "path"
    failure(series(registry, "directory", {"path": "in/a.csv"}), ctx, "is a file, not a folder")
    failure(series(registry, "directory", {"path": ".."}), ctx, "outside your root folder")
    assert invalid(registry, "directory", {"path": "in", "pattern": "../*"}).field == (
        "series.config.pattern"
    )
    assert invalid(registry, "directory", {"path": "in", "pattern": "/etc/*"}).field == (
        "series.config.pattern"
    )


@pytest.fixture
def database(ctx: RunContext) -> Path:
    path = ctx.owner_root / "crm.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (name TEXT, email TEXT, revenue REAL)")
        connection.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [("ACME", "boss@acme.example", 10.5), ("Umbrella", None, 3.0)],
        )
    connection.close()
    return path


def test_sql_on_sqlite(registry, ctx, database):
    query = "SELECT name, email, revenue * 2 AS doubled FROM customers WHERE name LIKE '%:%' OR 1"
    component = series(registry, "sql", {"database": "crm.sqlite", "query": query})
    assert list(component.sets(ctx)) == [
        {"name": "ACME", "email": "boss@acme.example", "doubled": 21.0},
        {"name": "Umbrella", "email": None, "doubled": 6.0},
    ]
    assert list(component.preview(ctx, 1)) == [
        {"name": "ACME", "email": "boss@acme.example", "doubled": 21.0}
    ]


def test_sql_errors(registry, ctx, database):
    def sql_failure(config: dict[str, Any], match: str) -> InvalidConfig:
        return failure(series(registry, "sql", config), ctx, match)

    error = sql_failure({"database": "crm.sqlite", "query": "SELECT * FROM nope"}, "no such table")
    assert error.field == "query"
    # The database is opened read-only: a query cannot change it.
    error = sql_failure({"database": "crm.sqlite", "query": "DELETE FROM customers"}, "readonly")
    assert error.field == "query"
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM customers").fetchone() == (2,)
    connection.close()
    sql_failure(
        {"database": "crm.sqlite", "query": "SELECT name, email AS name FROM customers"},
        r"the columns \['name'\] appear twice",
    )
    error = sql_failure({"database": "missing.db", "query": "SELECT 1"}, "does not exist")
    assert error.field == "database"
    (ctx.owner_root / "text.db").write_text("this is not a database at all, just some text " * 30)
    error = sql_failure({"database": "text.db", "query": "SELECT 1"}, "is not an SQLite database")
    assert error.field == "database"
    error = sql_failure({"database": "../crm.sqlite", "query": "SELECT 1"}, "outside your root")
    assert error.field == "database"

    assert invalid(registry, "sql", {"query": "SELECT 1"}).field == "series.config.database"
    both = {"query": "SELECT 1", "database": "a.db", "url": "sqlite://"}
    assert invalid(registry, "sql", both).field == "series.config.database"
    assert invalid(registry, "sql", {"database": "crm.sqlite"}).field == "series.config"
    assert registry.secret_fields("series", "sql") == ["url"]


def test_sql_url_needs_sqlalchemy(registry, ctx, database):
    config = {"url": f"sqlite:///{database}", "query": "SELECT name FROM customers"}
    if find_spec("sqlalchemy") is None:
        error = invalid(registry, "sql", config)
        assert error.field == "series.config.url"
        assert "SQLAlchemy is not installed" in error.message
        failure(SqlSeries(config), ctx, "pip install sqlalchemy")
    else:
        component = series(registry, "sql", config)
        assert list(component.sets(ctx)) == [{"name": "ACME"}, {"name": "Umbrella"}]
        bad = series(registry, "sql", {**config, "query": "SELECT * FROM nope"})
        assert failure(bad, ctx, "no such table").field == "query"


@pytest.fixture
def module(ctx: RunContext) -> str:
    """A module in the owner's root folder, named uniquely so tests do not share imports."""
    name = f"customers_{uuid.uuid4().hex}"
    (ctx.owner_root / f"{name}.py").write_text(
        "import itertools\n"
        "def listed(region, limit=2):\n"
        "    return [{'region': region, 'n': n} for n in range(limit)]\n"
        "def endless():\n"
        "    for n in itertools.count():\n"
        "        yield {'n': n}\n"
        "def mixed():\n"
        "    return [{'n': 0}, ['not', 'a', 'dict']]\n"
        "def single():\n"
        "    return {'n': 0}\n"
        "def broken():\n"
        "    raise RuntimeError('the CRM is down')\n"
        "class Source:\n"
        "    @staticmethod\n"
        "    def rows():\n"
        "        return iter([{'n': 1}])\n"
        "NOT_CALLABLE = 3\n"
    )
    yield name
    sys.modules.pop(name, None)


def test_python(registry, ctx, module):
    component = series(
        registry, "python", {"function": f"{module}:listed", "kwargs": {"region": "{region}"}}
    )
    assert list(component.sets(ctx)) == [{"region": "north", "n": 0}, {"region": "north", "n": 1}]
    assert str(ctx.owner_root.resolve()) not in sys.path
    assert list(series(registry, "python", {"function": f"{module}:Source.rows"}).sets(ctx)) == [
        {"n": 1}
    ]
    # Preview stops early, even on a generator that never ends.
    endless = series(registry, "python", {"function": f"{module}:endless"})
    assert list(endless.preview(ctx, 3)) == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_python_errors(registry, ctx, module):
    def python_failure(function: str, match: str) -> InvalidConfig:
        error = failure(series(registry, "python", {"function": function}), ctx, match)
        assert error.field == "function"
        return error

    python_failure(f"{module}:mixed", r"item 1 from .*:mixed is list \['not', 'a', 'dict'\]")
    python_failure(f"{module}:single", "returned dict .*; return a list of dicts or yield dicts")
    python_failure(f"{module}:NOT_CALLABLE", "is not callable")
    python_failure(f"{module}:nothing", f"{module} has no 'nothing'")
    python_failure("no_such_module_here:f", "no module named 'no_such_module_here'")
    with pytest.raises(RuntimeError, match="the CRM is down"):
        list(series(registry, "python", {"function": f"{module}:broken"}).sets(ctx))
    assert str(ctx.owner_root.resolve()) not in sys.path

    error = invalid(registry, "python", {"function": "no colon"})
    assert error.field == "series.config.function" and "module:callable" in error.message
    assert invalid(registry, "python", {"function": "m:f", "kwargs": []}).field == (
        "series.config.kwargs"
    )
