"""The documentation stays true: every setting is documented, every REST route described."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

from traitlets import Int
from traitlets.config import Configurable

import jupyter_taskplanner

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "configuration.md"
REGENERATE = "python docs/gen_config_docs.py > docs/configuration.md"


def package_configurables() -> list[type[Configurable]]:
    """Every ``Configurable`` subclass defined in a module of the package."""

    def fail(name: str) -> None:
        raise ImportError(f"cannot import {name}")

    names = [jupyter_taskplanner.__name__] + [
        info.name
        for info in pkgutil.walk_packages(
            jupyter_taskplanner.__path__, f"{jupyter_taskplanner.__name__}.", onerror=fail
        )
        if not info.name.endswith(".__main__")
    ]
    found = []
    for name in names:
        module = importlib.import_module(name)
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, Configurable)
            and value.__module__ == name
        ]
    return found


def problems(classes: list[type[Configurable]], reference: str) -> list[str]:
    """What is wrong with the help or the documentation of the classes' config traits."""
    found = []
    for cls in classes:
        for name, trait in sorted(cls.class_own_traits(config=True).items()):
            setting = f"{cls.__name__}.{name}"
            if not (trait.help or "").strip():
                found.append(f"{setting} has no help text")
            if not re.search(rf"\b{re.escape(setting)}\b", reference):
                found.append(f"{setting} is not in docs/configuration.md (run: {REGENERATE})")
    return found


def test_every_config_trait_has_help_and_is_documented() -> None:
    classes = package_configurables()
    names = {cls.__name__ for cls in classes}
    assert {"TaskPlannerApp", "TaskPlannerCommand"} <= names  # the walk found the package
    assert problems(classes, REFERENCE.read_text(encoding="utf-8")) == []


def test_the_reference_is_what_the_generator_writes() -> None:
    generated = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_config_docs.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert generated == REFERENCE.read_text(encoding="utf-8"), (
        f"docs/configuration.md is out of date; run: {REGENERATE}"
    )


class Sample(Configurable):
    """A class whose settings are partly undocumented, to show the check catches it."""

    documented = Int(1, config=True, help="Documented and explained.")
    silent = Int(2, config=True)
    missing = Int(3, config=True, help="Explained but not in the reference.")
    internal = Int(4, help="Not a setting, so not checked.")


def test_the_check_reports_missing_help_and_missing_documentation() -> None:
    reference = "`Sample.documented` `Sample.silent` `Sample.missingly`"
    assert problems([Sample], reference) == [
        f"Sample.missing is not in docs/configuration.md (run: {REGENERATE})",
        "Sample.silent has no help text",
    ]


def test_the_rest_reference_covers_every_route_of_the_openapi_document() -> None:
    document = json.loads((ROOT / "jupyter_taskplanner" / "openapi.json").read_text())
    reference = (ROOT / "docs" / "rest-api.md").read_text(encoding="utf-8")
    operations = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    ]
    assert len(operations) >= len(document["paths"]) > 0
    assert [op for op in operations if f"`{op}`" not in reference] == [], (
        "docs/rest-api.md lacks a section for these routes of openapi.json"
    )
