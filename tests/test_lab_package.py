"""The Lab extension's packaging and documentation agree with its source (no build needed)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jupyter_taskplanner

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "labextension"
PACKAGE = json.loads((LAB / "package.json").read_text(encoding="utf-8"))
DOC = (ROOT / "docs" / "lab.md").read_text(encoding="utf-8")


def test_the_npm_package_is_the_python_package() -> None:
    """One version, one name: the wheel's shared data, the develop link and Lab's discovery."""
    name = PACKAGE["name"]
    assert PACKAGE["version"] == jupyter_taskplanner.__version__
    assert jupyter_taskplanner._jupyter_labextension_paths() == [
        {"src": "labextension", "dest": name}
    ]
    lab = PACKAGE["jupyterlab"]
    assert lab["outputDir"] == "../jupyter_taskplanner/labextension"
    assert lab["discovery"]["server"]["base"]["name"] == "jupyter_taskplanner"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["jupyter_taskplanner/labextension"] == f"share/jupyter/labextensions/{name}"
    assert shared["install.json"] == f"share/jupyter/labextensions/{name}/install.json"
    install = json.loads((ROOT / "install.json").read_text(encoding="utf-8"))
    assert install["packageName"] == pyproject["project"]["name"]


def test_build_and_lint_tools_are_pinned() -> None:
    """Exact versions for the tools (the lock file pins the rest)."""
    loose = {
        tool: version
        for tool, version in PACKAGE["devDependencies"].items()
        if not re.fullmatch(r"\d+\.\d+\.\d+", version)
    }
    assert not loose, loose
    assert (LAB / "package-lock.json").exists()


def test_every_preference_is_documented_with_its_default() -> None:
    schema = json.loads((LAB / "schema" / "planner.json").read_text(encoding="utf-8"))
    documented = dict(re.findall(r"^\| `(\w+)` \| `?([^|`]+?)`? \|", DOC, re.MULTILINE))
    for name, field in schema["properties"].items():
        assert name in documented, f"docs/lab.md does not list the preference {name}"
        assert documented[name] == json.dumps(field["default"]).strip('"'), name
    assert set(documented) == set(schema["properties"])


def test_every_command_the_docs_name_exists() -> None:
    tokens = (LAB / "src" / "tokens.ts").read_text(encoding="utf-8")
    declared = set(re.findall(r"'(taskplanner:[\w-]+)'", tokens))
    # Commands are named with their arguments or alone; `taskplanner:admin` is a permission.
    named = set(re.findall(r"`(taskplanner:[\w-]+)`", DOC)) - {"taskplanner:admin"}
    assert named == declared
