"""The built-in job types, run in-process on a temporary owner root.

Real kernels (the venv's ``python3``), real subprocesses; the worker process around a job
is the executor's business and is tested with it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_taskplanner.components import ENTRY_POINT_GROUP, Registry, RunContext
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.jobs import JobFailed
from jupyter_taskplanner.jobs.command import CommandJob, ScriptJob
from jupyter_taskplanner.jobs.notebook import SCRAP_MIMETYPES, NotebookJob, glued_value
from jupyter_taskplanner.jobs.python import PythonJob
from jupyter_taskplanner.testing import validate_as_saved

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
JOBS = (NotebookJob, PythonJob, CommandJob, ScriptJob)

MakeContext = Callable[..., RunContext]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The owner's root folder."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def progress() -> list[tuple[int, int, str]]:
    return []


@pytest.fixture
def make_ctx(tmp_path: Path, root: Path, progress: list) -> MakeContext:
    """Build a run context with a fresh output folder and the given placeholders."""
    runs = itertools.count(1)

    def make(**placeholders: Any) -> RunContext:
        run_id = next(runs)
        output_dir = tmp_path / f"results-{run_id}"
        output_dir.mkdir()
        return RunContext(
            owner="alice",
            owner_root=root,
            task_id=1,
            task_name="daily",
            run_id=run_id,
            started=datetime(2024, 5, 1, 6, 30, tzinfo=UTC),
            output_dir=output_dir,
            placeholders=placeholders,
            progress=lambda done, total, message: progress.append((done, total, message)),
        )

    return make


def copy_notebook(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOKS / name, target)
    return target


def outputs_text(cell: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


# --- notebook -------------------------------------------------------------------------------


def test_notebook_parameters_progress_html_and_glued_condition(
    make_ctx: MakeContext, root: Path, progress: list, capfd: pytest.CaptureFixture[str]
) -> None:
    copy_notebook("report.ipynb", root / "reports" / "report.ipynb")
    # A series set's keys arrive as parameters; explicit parameters win; keys that are no
    # Python names stay out.
    ctx = make_ctx(customer="ACME/West", rows=7, **{"class": "x", "job.prep.rows": 1})
    job = NotebookJob(
        {
            "path": "reports/report.ipynb",
            "kernel": "python3",
            "parameters": {"rows": 0, "title": "Sales for {customer}"},
            "output_name": "{notebook_stem}-{customer}",
            "formats": ["ipynb", "html", "pdf"],
            "condition": {"glued": "rows"},
        },
        name="report",
    )

    results = job.run(ctx)

    printed = capfd.readouterr()
    line = "Sales for ACME/West: 0 rows for ACME/West"
    assert line in printed.out  # kernel output is part of the job's log
    made_pdf = any(result.metadata["format"] == "pdf" for result in results)
    assert made_pdf != ("PDF skipped:" in printed.out)  # made, or one line says why not
    files = ["report-ACME_West.ipynb", "report-ACME_West.html"]
    assert [result.value for result in results] == files + (["report-ACME_West.pdf"] * made_pdf)
    for result in results:
        assert result.flavor == "file" and result.job == "report"
        assert result.valid is False  # the glued value is rows = 0
        assert result.metadata == {
            "notebook": "reports/report.ipynb",
            "format": result.value.rsplit(".", 1)[1],
            "cells": 4,
            "condition": 0,
        }
        assert (ctx.output_dir / result.value).is_file()

    executed = nbformat.read(ctx.output_dir / files[0], as_version=4)
    assert executed.cells[1].metadata.tags == ["parameters"]
    injected = executed.cells[2]
    assert injected.metadata.tags == ["injected-parameters"]
    assert 'customer = "ACME/West"' in injected.source and "rows = 0" in injected.source
    assert "class" not in injected.source and "job.prep" not in injected.source
    assert outputs_text(executed.cells[3]) == line + "\n"
    assert line in (ctx.output_dir / files[1]).read_text(encoding="utf-8")
    assert progress == [(0, 4, "starting kernel")] + [(i, 4, f"cell {i} of 4") for i in range(1, 5)]


def test_notebook_snapshot_runs_the_saved_copy_and_live_the_current_file(
    make_ctx: MakeContext, root: Path, tmp_path: Path
) -> None:
    notebook = copy_notebook("report.ipynb", root / "reports" / "report.ipynb")
    snapshots = tmp_path / "snapshots"
    config = {
        "path": "reports/report.ipynb",
        "kernel": "python3",
        "input": "snapshot",
        "formats": ["ipynb"],
        "condition": {"expression": "rows > 4"},
    }
    frozen = NotebookJob.freeze(config, root, snapshots)
    assert NotebookJob.freeze(config, root, snapshots) == frozen  # same content, same file
    snapshot = Path(frozen["snapshot"])
    assert snapshot.parent == snapshots and snapshot.name.startswith("report.")
    notebook.write_text(notebook.read_text().replace("rows = 3", "rows = 5"))

    [saved] = NotebookJob(frozen).run(make_ctx())
    live_config = NotebookJob.freeze({**frozen, "input": "live"}, root, snapshots)
    assert "snapshot" not in live_config
    [current] = NotebookJob(live_config).run(make_ctx())

    assert (saved.valid, saved.metadata["condition"]) == (False, False)  # rows = 3
    assert (current.valid, current.metadata["condition"]) == (True, True)  # rows = 5


def test_failing_cell_fails_the_job_and_keeps_the_partial_notebook(
    make_ctx: MakeContext, root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    copy_notebook("failing.ipynb", root / "failing.ipynb")
    ctx = make_ctx()
    job = NotebookJob({"path": "failing.ipynb", "kernel": "python3"})

    with pytest.raises(JobFailed, match="cell 2 of 3 failed: ValueError: the data file is empty"):
        job.run(ctx)

    printed = capfd.readouterr()
    assert "loading the data" in printed.out
    assert 'raise ValueError("the data file is empty")' in printed.err  # the cell's traceback
    assert "\x1b[" not in printed.err
    assert "The notebook, as far as it ran, is kept as failing.ipynb" in printed.err
    assert sorted(path.name for path in ctx.output_dir.iterdir()) == ["failing.ipynb"]
    partial = nbformat.read(ctx.output_dir / "failing.ipynb", as_version=4)
    first, failed, never = (cell for cell in partial.cells if cell.cell_type == "code")
    assert outputs_text(first) == "loading the data\n"
    assert failed.outputs[0].output_type == "error"
    assert never.execution_count is None and never.outputs == []


def test_notebook_timeout_runs_in_the_notebook_folder(
    make_ctx: MakeContext, root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = root / "nested"
    folder.mkdir()
    slow = new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}},
        cells=[
            new_code_cell("import os\nprint('working in', os.getcwd())"),
            new_code_cell("import time\ntime.sleep(60)"),
        ],
    )
    nbformat.write(slow, folder / "slow.ipynb")
    ctx = make_ctx()
    job = NotebookJob({"path": "nested/slow.ipynb", "timeout": 5, "cell_timeout": 60})

    with pytest.raises(
        JobFailed, match=r"did not finish within its timeout of 5 s \(cell 2 of 2\)"
    ):
        job.run(ctx)

    assert f"working in {folder}" in capfd.readouterr().out
    assert (ctx.output_dir / "slow.ipynb").is_file()


def test_notebook_refuses_missing_or_foreign_input(
    make_ctx: MakeContext, root: Path, tmp_path: Path
) -> None:
    copy_notebook("report.ipynb", root / "report.ipynb")
    ctx = make_ctx()
    with pytest.raises(InvalidConfig, match="outside your root folder") as escape:
        NotebookJob({"path": "../report.ipynb"}).run(ctx)
    assert escape.value.field == "path"
    with pytest.raises(JobFailed, match="does not exist"):
        NotebookJob({"path": "missing.ipynb"}).run(ctx)
    with pytest.raises(JobFailed, match=r"kernel 'nope' .* available: .*python3"):
        NotebookJob({"path": "report.ipynb", "kernel": "nope"}).run(ctx)
    with pytest.raises(JobFailed, match="holds no snapshot"):
        NotebookJob({"path": "report.ipynb", "input": "snapshot"}).run(ctx)
    # A snapshot field naming any other file (another user's notebook...) is refused.
    foreign = tmp_path / "report.0123456789abcdef0123456789abcdef.ipynb"
    shutil.copy(NOTEBOOKS / "report.ipynb", foreign)
    config = {"path": "report.ipynb", "input": "snapshot", "snapshot": str(foreign)}
    with pytest.raises(JobFailed, match="not an intact snapshot"):
        NotebookJob(config).run(ctx)
    with pytest.raises(JobFailed, match="cannot be read"):
        NotebookJob({**config, "snapshot": str(tmp_path / "gone.ipynb")}).run(ctx)


def test_freeze_refuses_what_it_cannot_snapshot(root: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="no such") as error:
        NotebookJob.freeze({"path": "gone.ipynb", "input": "snapshot"}, root, tmp_path / "snap")
    assert error.value.field == "path"
    live = {"path": "gone.ipynb", "snapshot": "/etc/passwd"}
    assert NotebookJob.freeze(live, root, tmp_path / "snap") == {"path": "gone.ipynb"}


def test_glued_value_reads_the_last_scrap_of_that_name() -> None:
    def glue(name: str, data: Any, mimetype: str = SCRAP_MIMETYPES[0]) -> Any:
        scrap = {"name": name, "data": data, "encoder": "json", "version": 1}
        return nbformat.v4.new_output("display_data", data={mimetype: scrap})

    cell = new_code_cell("glue")
    cell.outputs = [glue("rows", 0), glue("other", 5), glue("rows", "many", SCRAP_MIMETYPES[1])]
    nb = new_notebook(cells=[cell])
    assert glued_value(nb, "rows") == "many"
    assert glued_value(nb, "other") == 5
    with pytest.raises(JobFailed, match=r"glued no value named 'total' \(condition.glued\)"):
        glued_value(nb, "total")


# --- python ---------------------------------------------------------------------------------

FUNCTIONS = """
from pathlib import Path

HERE = Path(__file__).parent

def nothing():
    return None

def greet(greeting, times=1):
    return " ".join([f"hello {greeting}"] * times)

def data():
    return {"rows": 3, "ok": True}

async def later():
    return "awaited"

def files():
    (HERE / "sub").mkdir(exist_ok=True)
    (HERE / "report.csv").write_text("a,b\\n")
    (HERE / "sub" / "report.csv").write_text("c,d\\n")
    return [Path("lib/report.csv"), HERE / "sub" / "report.csv"]

def broken():
    raise ValueError("no data today")

def odd():
    return object()

def vanished():
    return Path("nope.csv")

class Tools:
    @staticmethod
    def one():
        return 1
"""


@pytest.fixture
def functions(root: Path) -> Iterator[str]:
    """A module of test functions in a sub-folder of the owner root; returns its name."""
    (root / "lib").mkdir()
    (root / "lib" / "pyjob_functions.py").write_text(FUNCTIONS)
    yield "pyjob_functions"
    sys.modules.pop("pyjob_functions", None)


@pytest.mark.parametrize(
    ("function", "kwargs", "flavor", "value"),
    [
        ("nothing", {}, "none", None),
        ("greet", {"greeting": "{customer}", "times": 2}, "text", "hello ACME hello ACME"),
        ("data", {}, "text", json.dumps({"rows": 3, "ok": True})),
        ("later", {}, "text", "awaited"),
        ("Tools.one", {}, "text", "1"),
    ],
)
def test_python_job_return_values(
    make_ctx: MakeContext, functions: str, function: str, kwargs: dict, flavor: str, value: Any
) -> None:
    job = PythonJob({"function": f"{functions}:{function}", "kwargs": kwargs, "path": "lib"})
    path_before = list(sys.path)
    [result] = job.run(make_ctx(customer="ACME"))
    assert (result.flavor, result.value, result.job) == (flavor, value, "python")
    assert sys.path == path_before


def test_python_job_returned_paths_become_file_results(
    make_ctx: MakeContext, functions: str
) -> None:
    ctx = make_ctx()
    results = PythonJob({"function": f"{functions}:files", "path": "lib"}).run(ctx)
    # A relative path counts from the owner's root; equal names are kept apart.
    assert [(result.flavor, result.value) for result in results] == [
        ("file", "report.csv"),
        ("file", "report-2.csv"),
    ]
    assert (ctx.output_dir / "report.csv").read_text() == "a,b\n"
    assert (ctx.output_dir / "report-2.csv").read_text() == "c,d\n"


@pytest.mark.parametrize(
    ("function", "error", "message"),
    [
        ("broken", ValueError, "no data today"),
        ("odd", JobFailed, "returned a object, which is neither None, text, JSON data"),
        ("vanished", JobFailed, "returned nope.csv, which is not a file"),
        ("missing", InvalidConfig, "pyjob_functions has no 'missing'"),
    ],
)
def test_python_job_failures(
    make_ctx: MakeContext, functions: str, function: str, error: type, message: str
) -> None:
    job = PythonJob({"function": f"{functions}:{function}", "path": "lib"})
    with pytest.raises(error, match=message):
        job.run(make_ctx())


def test_python_job_import_problems(make_ctx: MakeContext, root: Path) -> None:
    ctx = make_ctx()
    with pytest.raises(InvalidConfig, match="no module named 'no_such_module_here'") as missing:
        PythonJob({"function": "no_such_module_here:run"}).run(ctx)
    assert missing.value.field == "function"
    with pytest.raises(InvalidConfig, match="outside your root folder") as escape:
        PythonJob({"function": "json:dumps", "path": "../.."}).run(ctx)
    assert escape.value.field == "path"
    with pytest.raises(JobFailed, match=r"import folder .* \(path\) does not exist"):
        PythonJob({"function": "json:dumps", "path": "nowhere"}).run(ctx)


# --- command and script ---------------------------------------------------------------------


def test_command_fills_placeholders_and_keeps_files_and_stdout(
    make_ctx: MakeContext, root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (root / "work" / "out").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("not yours")
    (root / "work" / "out" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    job = CommandJob(
        {
            "program": "sh",
            "args": [
                "-c",
                'printf "%s" "$GREETING" > "out/$1.txt"; echo "made $1"',
                "sh",
                "{customer}",
            ],
            "env": {"GREETING": "hello {customer}"},
            "cwd": "work",
            "output_glob": "out/*.txt",
            "stdout_result": True,
        }
    )
    ctx = make_ctx(customer="ACME")

    results = job.run(ctx)

    assert [(result.flavor, result.value) for result in results] == [
        ("file", "out/ACME.txt"),
        ("text", "made ACME\n"),
    ]
    assert (ctx.output_dir / "out" / "ACME.txt").read_text() == "hello ACME"
    printed = capfd.readouterr()
    assert "made ACME" in printed.out  # stdout is logged even when kept as a result
    assert "out/leak.txt not kept: it leads outside your root folder" in printed.err
    assert CommandJob.permission == "taskplanner:shell"


def test_command_failures(make_ctx: MakeContext, capfd: pytest.CaptureFixture[str]) -> None:
    ctx = make_ctx()
    with pytest.raises(JobFailed, match="sh failed with exit code 3"):
        CommandJob({"program": "sh", "args": ["-c", "echo trouble >&2; exit 3"]}).run(ctx)
    assert "trouble" in capfd.readouterr().err
    with pytest.raises(JobFailed, match="sh was killed by signal SIGKILL"):
        CommandJob({"program": "sh", "args": ["-c", "kill -9 $$"]}).run(ctx)
    with pytest.raises(
        JobFailed, match="program 'no-such-program-here' is not an executable file on PATH"
    ):
        CommandJob({"program": "no-such-program-here"}).run(ctx)
    with pytest.raises(JobFailed, match=r"program '\./run\.sh' is not an executable file$"):
        CommandJob({"program": "./run.sh"}).run(ctx)
    with pytest.raises(InvalidConfig, match="outside your root folder") as escape:
        CommandJob({"program": "true", "cwd": "../.."}).run(ctx)
    assert escape.value.field == "cwd"
    with pytest.raises(JobFailed, match=r"working folder .* \(cwd\) does not exist"):
        CommandJob({"program": "true", "cwd": "nowhere"}).run(ctx)
    # Nothing kept and nothing asked for: one "none" result.
    [result] = CommandJob({"program": "true"}).run(ctx)
    assert result.flavor == "none"


SCRIPT = """
import pathlib, sys
pathlib.Path("made.txt").write_text(" ".join(sys.argv[1:]))
print("made for", sys.argv[1])
if sys.argv[1] == "fail":
    raise SystemExit("giving up")
"""


def test_script_runs_in_its_folder(make_ctx: MakeContext, root: Path) -> None:
    (root / "scripts").mkdir()
    (root / "scripts" / "make.py").write_text(SCRIPT)
    job = ScriptJob(
        {
            "path": "scripts/make.py",
            "args": ["{customer}", "extra"],
            "output_glob": "*.txt",
            "stdout_result": True,
        }
    )
    ctx = make_ctx(customer="ACME")
    results = job.run(ctx)
    assert [(result.flavor, result.value) for result in results] == [
        ("file", "made.txt"),
        ("text", "made for ACME\n"),
    ]
    assert (ctx.output_dir / "made.txt").read_text() == "ACME extra"
    assert ScriptJob.permission is None


def test_script_failures(
    make_ctx: MakeContext, root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (root / "make.py").write_text(SCRIPT)
    ctx = make_ctx()
    with pytest.raises(JobFailed, match=r"python[\d.]* failed with exit code 1"):
        ScriptJob({"path": "make.py", "args": ["fail"]}).run(ctx)
    assert "giving up" in capfd.readouterr().err
    with pytest.raises(JobFailed, match=r"script .*gone.py \(path\) does not exist"):
        ScriptJob({"path": "gone.py"}).run(ctx)
    with pytest.raises(InvalidConfig, match="outside your root folder") as escape:
        ScriptJob({"path": "../../make.py"}).run(ctx)
    assert escape.value.field == "path"


# --- registration and config validation ----------------------------------------------------


def test_job_types_are_registered_as_entry_points() -> None:
    # Installed plugins (the sample plugin among them) add job types of their own.
    found = {
        point.name: point.load()
        for point in entry_points(group=ENTRY_POINT_GROUP)
        if point.name.startswith("job.") and point.value.startswith("jupyter_taskplanner.")
    }
    assert found == {f"job.{cls.type_name}": cls for cls in JOBS}
    for cls in JOBS:
        json.dumps(cls.describe())  # the UI receives it as JSON


@pytest.mark.parametrize(
    ("type_name", "config", "field", "message"),
    [
        ("python", {}, "jobs[0].config", "'function' is a required property"),
        ("python", {"function": "reports"}, "jobs[0].config.function", "package.module:function"),
        ("python", {"function": "a.b:c", "kwargs": []}, "jobs[0].config.kwargs", "object"),
        ("notebook", {"path": "report.txt"}, "jobs[0].config.path", "not a .ipynb file"),
        ("notebook", {"path": "a.ipynb", "typo": 1}, "jobs[0].config", "'typo' was unexpected"),
        ("notebook", {"path": "a.ipynb", "formats": ["docx"]}, "jobs[0].config.formats.0", "docx"),
        ("notebook", {"path": "a.ipynb", "formats": []}, "jobs[0].config.formats", "empty"),
        ("notebook", {"path": "a.ipynb", "input": "frozen"}, "jobs[0].config.input", "frozen"),
        ("notebook", {"path": "a.ipynb", "cell_timeout": 0}, "jobs[0].config.cell_timeout", "1"),
        (
            "notebook",
            {"path": "a.ipynb", "output_name": "../x"},
            "jobs[0].config.output_name",
            "plain file name",
        ),
        (
            "notebook",
            {"path": "a.ipynb", "condition": {"expression": "x", "glued": "y"}},
            "jobs[0].config.condition",
            "either an expression or a glued value",
        ),
        (
            "notebook",
            {"path": "a.ipynb", "condition": {"expression": "rows >"}},
            "jobs[0].config.condition.expression",
            "not a Python expression",
        ),
        ("command", {"program": ""}, "jobs[0].config.program", "non-empty"),
        ("command", {"program": "ls", "env": {"A": 1}}, "jobs[0].config.env.A", "string"),
        (
            "command",
            {"program": "ls", "output_glob": "../*"},
            "jobs[0].config.output_glob",
            "no ..",
        ),
        ("script", {"path": "run.sh"}, "jobs[0].config.path", "not a .py file"),
        (
            "script",
            {"path": "a.py", "output_glob": "/etc/*"},
            "jobs[0].config.output_glob",
            "no leading /",
        ),
    ],
)
def test_bad_configs_name_the_field(type_name: str, config: dict, field: str, message: str) -> None:
    registry = Registry(JOBS)
    with pytest.raises(InvalidConfig, match=message) as error:
        validate_as_saved(registry, "job", {"type": type_name, "config": config}, "jobs[0]")
    assert error.value.field == field
    assert error.value.message.startswith(field)


@pytest.mark.parametrize(
    ("type_name", "config"),
    [
        ("python", {"function": "reports.daily:Builder.run", "kwargs": {"day": "{date}"}}),
        ("notebook", {"path": "r.ipynb", "condition": {"glued": "rows"}, "formats": ["pdf"]}),
        ("command", {"program": "convert", "args": ["a", "b"], "output_glob": "**/*.png"}),
        ("script", {"path": "s/run.py", "cwd": "data"}),
    ],
)
def test_good_configs_pass(type_name: str, config: dict) -> None:
    entry = Registry(JOBS).validate("job", {"type": type_name, "config": config}, "jobs[0]")
    assert entry["config"] == config


def test_python_job_finds_a_module_written_after_a_job_imported_from_its_folder(
    make_ctx: MakeContext, root: Path
) -> None:
    # A long-lived process (a test, a Dask worker) runs jobs one after the other: the import
    # system's cache of the folder must not hide a module written since, even when the
    # folder's time stamp does not show the change.
    (root / "lib").mkdir()
    (root / "lib" / "pyjob_before.py").write_text("def f():\n    return 'before'\n")
    stamp = (root / "lib").stat().st_mtime_ns
    try:
        [first] = PythonJob({"function": "pyjob_before:f", "path": "lib"}).run(make_ctx())
        (root / "lib" / "pyjob_after.py").write_text("def f():\n    return 'after'\n")
        os.utime(root / "lib", ns=(stamp, stamp))
        [second] = PythonJob({"function": "pyjob_after:f", "path": "lib"}).run(make_ctx())
        assert (first.value, second.value) == ("before", "after")
    finally:
        sys.modules.pop("pyjob_before", None)
        sys.modules.pop("pyjob_after", None)
