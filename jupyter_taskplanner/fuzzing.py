"""API fuzzing: schemathesis against the OpenAPI document a running server serves.

``fuzz(url, token, examples=...)`` runs ``st run`` (schemathesis, in the ``test`` extra) on
``<url>/taskplanner/api/openapi.json`` as the user of ``token``, with every check: no 5xx,
each status, header, content type and body as documented, schema-valid requests accepted,
schema-violating ones refused, authentication enforced (401 without it), and the stateful
checks (a deleted task is gone, a created one is there).  It returns the figures of the run
(``FuzzFigures``).  The tests run it small; ``make stress`` runs it long.

One check of schemathesis is too strict for this API and is narrowed here: a schema-valid
request may be refused with 400 where the document cannot say why (``SEMANTIC_REFUSALS``).
A component's config is the main one: the document leaves it an object, as each type has its
own schema (served by ``GET /components``) and checks no schema can state (a path inside the
owner's root, a cron line that parses, a task that exists).  The 400 is accepted only when
the error names a field of those kinds; any other 400 for a schema-valid request fails the
run, like a 5xx does.

``fuzz`` writes a hooks file that registers that check (``register_checks``) with the
schemathesis it runs; importing this module imports nothing of schemathesis.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEMANTIC_REFUSALS: dict[str, str] = {
    r"(tasks\[\d+\]\.)?((triggers|jobs|actions)\[\d+\]|series)\.config(\..+)?": (
        "a component's config: its type's own schema (GET /components) and checks no schema "
        "states (paths inside the owner's root, a cron line that parses, tasks that exist)"
    ),
    r"(tasks\[\d+\]\.)?((triggers|jobs|actions)\[\d+\]|series)\.version": (
        "a component's config version newer than its type knows (the highest differs by type)"
    ),
    r"(tasks\[\d+\]\.)?owner": (
        "an imported task's owner: another user's needs the admin permission (what the caller "
        "holds, not what the body is)"
    ),
    r"offset|length": "a byte range of a run's log needs `step` (one parameter needs another)",
    r"tail": "`tail` and a byte range exclude each other (one parameter excludes another)",
    r"series": "a series preview of a task without a series, or whose series fails",
    r"(tasks\[\d+\]\.)?id": (
        "an imported task's id: a task that does not exist (or is not the caller's), or in an "
        "import into a task another task than the URL's"
    ),
}
"""Field (a full match of the error's ``field``) -> why a schema-valid request is refused
with 400 there although the document cannot say so."""
_SEMANTIC = [re.compile(pattern) for pattern in SEMANTIC_REFUSALS]


@dataclass
class FuzzFigures:
    """What one schemathesis run tried and found."""

    cases: int
    """Test cases generated (and sent)."""
    operations: int
    """API operations tested."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Each kind of failure (schemathesis' report entry: code, title, count, operations)."""
    errors: list[Any] = field(default_factory=list)
    """Errors of the run itself (an operation schemathesis could not test)."""
    seconds: float = 0.0
    output: str = ""
    """The console output, for a failure message."""

    @property
    def failure_report(self) -> str:
        """The part of the output that shows each failure, with a curl line to reproduce it."""
        start = self.output.find(" FAILURES ")
        end = self.output.find(" SUMMARY ")
        return self.output[max(start, 0) : end if end > start else None].strip()

    @property
    def failed(self) -> int:
        """Failing cases, over every kind of failure."""
        return sum(int(failure.get("count", 1)) for failure in self.failures)


def semantic_refusal(body: Any) -> list[str]:
    """The fields of a 400 error reply that no ``SEMANTIC_REFUSALS`` pattern covers."""
    if not isinstance(body, dict):
        return ["(a reply without a JSON error)"]
    fields = [body.get("field")] + [
        error.get("field") for error in body.get("errors") or [] if isinstance(error, dict)
    ]
    return [
        str(name)
        for name in fields
        if not (isinstance(name, str) and any(p.fullmatch(name) for p in _SEMANTIC))
    ]


def config_text(hooks: Path, *, seed: int, report_dir: Path) -> str:
    """The ``schemathesis.toml`` of a run."""
    # 406: GET /events answers only a client that asks for the stream (Accept:
    # text/event-stream), which a fuzzer cannot learn from the document; the stream itself
    # would never end.
    expected = ["2xx", "3xx", "400", "401", "403", "404", "406", "409", "429"]
    return "\n".join(
        [
            f"hooks = {json.dumps(str(hooks))}",
            f"seed = {seed}",
            "workers = 1",
            "[checks]",
            "enabled = true",
            "[checks.positive_data_acceptance]",
            f"expected-statuses = {json.dumps(expected)}",
            "[reports]",
            f"directory = {json.dumps(str(report_dir))}",
            "[reports.json]",
            "enabled = true",
            "",
        ]
    )


PHASES = ("examples", "coverage", "fuzzing", "stateful")
"""Schemathesis' test phases.  ``coverage`` is exhaustive over the document (every
timezone name where a task takes one: about 12,000 cases, a minute here), ``fuzzing`` draws
``examples`` cases per operation, ``stateful`` follows the links between operations."""


def fuzz(
    url: str,
    token: str,
    *,
    examples: int,
    seed: int,
    workdir: Path,
    phases: tuple[str, ...] = PHASES,
    timeout: float = 3600,
) -> FuzzFigures:
    """Fuzz the planner API of the server at ``url`` as the user of ``token``.

    Schemathesis tests every operation of the document but the one it loads the document
    from (``GET /openapi.json``).
    """
    import time

    workdir.mkdir(parents=True, exist_ok=True)
    report_dir = workdir / "report"
    config = workdir / "schemathesis.toml"
    hooks = workdir / "planner_checks.py"
    hooks.write_text(
        "from jupyter_taskplanner.fuzzing import register_checks\n\nregister_checks()\n"
    )
    config.write_text(config_text(hooks, seed=seed, report_dir=report_dir))
    started = time.monotonic()
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st),
            "--no-color",
            f"--config-file={config}",
            "run",
            f"{url.rstrip('/')}/taskplanner/api/openapi.json",
            f"--header=Authorization: token {token}",
            "--checks=all",
            f"--max-examples={examples}",
            f"--phases={','.join(phases)}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    reports = sorted(report_dir.glob("*.json"))
    if not reports:
        raise RuntimeError(f"schemathesis wrote no report (exit {result.returncode}):\n{output}")
    report = json.loads(reports[-1].read_text())
    return FuzzFigures(
        cases=report["test_cases"]["generated"],
        operations=report["operations"]["tested"],
        failures=report["failures"],
        errors=report["errors"],
        seconds=time.monotonic() - started,
        output=output,
    )


def register_checks() -> None:
    """Register the planner's narrowing of ``positive_data_acceptance`` with schemathesis."""
    import schemathesis

    @schemathesis.check
    def semantic_refusals_only(
        ctx: schemathesis.CheckContext,
        response: schemathesis.Response,
        case: schemathesis.Case[Any],
    ) -> bool | None:
        """A schema-valid request refused with 400 is refused for a documented reason."""
        meta = case.meta
        mode = getattr(getattr(meta, "generation", None), "mode", None)
        if response.status_code != 400 or mode is None or not mode.is_positive:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        unexplained = semantic_refusal(body)
        if unexplained:
            raise AssertionError(
                "a schema-valid request was refused with 400 at "
                f"{', '.join(unexplained)}, which is no semantic refusal "
                "(jupyter_taskplanner.fuzzing.SEMANTIC_REFUSALS): make the document say it, "
                f"or accept the request\n{str(body)[:500]}"
            )
        return None
