"""A real ``jupyter lab`` and a real headless Chromium for the Lab extension's browser tests.

Not a conftest: only ``tests/test_lab*.py`` import it.  The tests need Debian's
``/usr/bin/chromium``, the ``playwright`` package (driving that browser; it never downloads
one) and the built extension (``jupyter_taskplanner/labextension``); ``make test`` brings all
three and sets ``TASKPLANNER_LAB_TESTS=required``, so that a missing one fails instead of
skipping the tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import HOST, PORT_ATTEMPTS, free_port, port_was_taken

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("TASKPLANNER_CHROMIUM", "/usr/bin/chromium"))
BUILT = REPO / "jupyter_taskplanner" / "labextension" / "static" / "style.js"
AXE = REPO / "labextension" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("TASKPLANNER_ARTIFACTS", REPO / "build" / "test-artifacts" / "lab"))
"""Where the browser tests save their screenshots."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def require_browser_setup() -> None:
    """Skip (or, under ``make test``, fail) when the browser tests cannot run here."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if not BUILT.exists():
        missing.append(f"{BUILT} (make lab)")
    if not AXE.exists():
        missing.append(f"{AXE} (npm ci in labextension/)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (the test extra)")
    if missing:
        message = "the Lab browser tests need " + ", ".join(missing)
        if os.environ.get("TASKPLANNER_LAB_TESTS") == "required":
            pytest.fail(message)
        pytest.skip(message)


class LabServer:
    """A ``jupyter lab`` process on 127.0.0.1 with the planner, its own database, root,
    settings and workspaces; ``stop()`` ends it."""

    def __init__(self, root: Path, state: Path) -> None:
        self.root = root
        self.token = "lab-test-token"
        self.log_path = state / "lab.log"
        state.mkdir(parents=True, exist_ok=True)
        # No "get Jupyter news?" prompt over the views the tests click.
        notification = state / "settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {
            **os.environ,
            "JUPYTER_DATA_DIR": str(state / "data"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
            # The server's time is UTC, whatever the machine's zone (the browser has another).
            "TZ": "UTC",
        }
        # A free port can be taken (by any process's connection) before Lab binds it: Lab
        # then exits instead of moving to a port nobody calls, and starts again on another.
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self.url = f"http://{HOST}:{self.port}"
            self.process = self._start(root, state, env)
            if self._wait_until_ready():
                return
        self.stop()
        raise RuntimeError(f"no free port for jupyter lab in {PORT_ATTEMPTS} attempts")

    def _start(self, root: Path, state: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--allow-root",
                "--no-browser",
                f"--ServerApp.ip={HOST}",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
                f"--TaskPlannerApp.db_path={state / 'planner' / 'tasks.db'}",
                "--TaskPlannerApp.single_user_name=alice",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def _wait_until_ready(self, within: float = 120) -> bool:
        """Wait until this Lab answers; False when it exited because its port was taken."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                self.call("GET", "/tasks")
            except OSError:
                time.sleep(0.2)
                continue
            self._require_extension()
            return True
        if self.process.poll() is not None and port_was_taken(
            self.log_path.read_bytes(), self.port
        ):
            return False
        self.stop()
        raise RuntimeError(f"jupyter lab did not start; see {self.log_path}")

    def _require_extension(self) -> None:
        """Fail at once, not test by test, when this Lab does not load the extension."""
        request = urllib.request.Request(
            f"{self.url}/lab/api/extensions", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            found = [item for item in json.load(response) if item["name"] == "jupyter-taskplanner"]
        if not (found and found[0]["enabled"] and found[0].get("status", "ok") == "ok"):
            self.stop()
            raise RuntimeError(
                "this JupyterLab does not load jupyter-taskplanner (make lab builds it and "
                f"links it into the environment): {found}"
            )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call the planner's REST API as the server's user."""
        request = urllib.request.Request(
            f"{self.url}/taskplanner/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def lab_url(self) -> str:
        """JupyterLab's page with a fresh layout (``reset``: no tabs a test left open)."""
        return f"{self.url}/lab?reset&token={self.token}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (whose ``launch`` gives it a fresh
    temporary profile, its own ``--user-data-dir``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot of the page as ``ARTIFACTS/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def axe_violations(page: Any, include: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations inside the elements matching ``include``."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async (include) => {
            const found = await window.axe.run({ include: [include] }, {
                resultTypes: ['violations'],
            });
            return {
                checked: found.passes.length + found.violations.length,
                violations: found.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5),
                })),
            };
        }""",
        include,
    )
    assert result["checked"], f"axe found nothing to check in {include}"
    return [item for item in result["violations"] if item["impact"] in ("serious", "critical")]
