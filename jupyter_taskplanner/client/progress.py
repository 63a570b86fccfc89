"""A run's progress while a client waits: a bar in a notebook, a text line in a terminal."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from ..vocabulary import RunDetail


class RunProgress:
    """Shows how far a run got: its steps done out of those started, the running step's own
    progress (a notebook's cell i of n), and the status."""

    def __init__(self, run_id: int, *, enabled: bool = True) -> None:
        self.run_id = run_id
        self._bar: Any = (
            tqdm(total=0, desc=f"run {run_id}", unit="step", leave=True) if enabled else None
        )

    def show(self, run: RunDetail) -> None:
        if self._bar is None:
            return
        # The steps may be a page of the run's: the counts are of all of them.
        running = [step for step in run["steps"] if step["status"] == "running"]
        detail = ""
        if running:
            step = running[0]
            progress = step.get("progress") or {}
            detail = f"{step['kind']} {step['name']}"
            if progress.get("message"):
                detail += f": {progress['message']}"
        self._bar.total = run["steps_total"]
        self._bar.n = run["steps_total"] - run["step_counts"].get("running", 0)
        self._bar.set_description(f"run {self.run_id} {run['status']}", refresh=False)
        self._bar.set_postfix_str(detail, refresh=False)
        self._bar.refresh()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
