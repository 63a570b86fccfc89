"""A real JupyterHub on 127.0.0.1 for the hub tests: proxy, dummy login, local spawner,
the planner as its service, users (and, for ``local_user``, their system accounts).

``start_hub`` writes a ``jupyterhub_config.py`` that sets the planner up with
``taskplanner_service`` as docs/jupyterhub.md does, starts the hub (which starts the proxy
and the service), mints an API token per user through a test service and waits until the
planner answers.  ``Hub.stop`` ends the hub (and with it the proxy, the service and the
users' servers) and removes the system accounts it made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROXY = ROOT / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"
SERVICE = "taskplanner"
API = f"/services/{SERVICE}/taskplanner/api"


ACCOUNTS_LOCK = Path(tempfile.gettempdir()) / "taskplanner-tests-accounts.lock"
"""Held while an account is made or removed: the workers of a parallel run do it at once."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skip_or_fail(reason: str) -> None:
    """Skip a hub test that cannot run here; fail it under ``make test``
    (``TASKPLANNER_HUB_TESTS=required``), where everything it needs is installed."""
    if os.environ.get("TASKPLANNER_HUB_TESTS") == "required":
        pytest.fail(f"the hub tests cannot run: {reason}")
    pytest.skip(reason)


def add_account(name: str) -> None:
    """Make the system account ``name`` (its group of the same name, a private home)."""
    with _accounts_lock():
        subprocess.run(["useradd", "-m", "-U", "-s", "/bin/sh", name], check=True)
    os.chmod(pwd.getpwnam(name).pw_dir, 0o700)


def remove_account(name: str) -> None:
    """Remove the system account ``name``, its group and its home."""
    with _accounts_lock():
        subprocess.run(["userdel", "-r", name], capture_output=True)


@contextlib.contextmanager
def _accounts_lock() -> Iterator[None]:
    # useradd and userdel refuse to work ("cannot lock /etc/passwd") while another edits it.
    with ACCOUNTS_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def missing() -> str | None:
    """Why a hub cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "the hub tests make system accounts and run jobs as them: they need root"
    if not PROXY.exists():
        return f"configurable-http-proxy is not installed in {PROXY.parent} (make test does it)"
    if not (BIN / "jupyterhub").exists():
        return "jupyterhub is not installed (the test extra)"
    return None


def users_python(folder: Path) -> str | None:
    """A Python the test's system accounts can run with this environment's packages: this
    one, or one made from the system's Python that adds this environment's site-packages
    (a venv whose interpreter lies under /root cannot be run by other users)."""

    def reachable(python: str) -> bool:
        # Every folder above the interpreter must let others through (no process needed).
        return all(folder.stat().st_mode & 0o001 for folder in Path(python).resolve().parents)

    def works(python: str) -> bool:
        probe = [python, "-c", "import jupyter_taskplanner"]
        try:
            return subprocess.run(probe, user="nobody", capture_output=True).returncode == 0
        except OSError:  # the interpreter itself is out of reach
            return False

    if reachable(sys.executable) and works(sys.executable):
        return sys.executable
    system = Path("/usr/bin/python3")
    if not system.exists():
        return None
    venv = folder / "users-python"
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = sysconfig.get_paths()["purelib"]
    (next((venv / "lib").glob("python3*")) / "site-packages" / "main-venv.pth").write_text(
        f"import site; site.addsitedir({site!r})\n"
    )
    python = str(venv / "bin" / "python")
    return python if works(python) else None


@dataclass
class Hub:
    """A running hub: its public URL, the users' API tokens, its folder and process."""

    url: str
    folder: Path
    process: subprocess.Popen[bytes]
    tester: str
    tokens: dict[str, str] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    db: Path | None = None
    service: subprocess.Popen[bytes] | None = None
    """The planner service's process when the test started it (an external service)."""

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The hub's REST API as the test service (admin of users and servers)."""
        return requests.request(
            method,
            f"{self.url}hub/api/{path.lstrip('/')}",
            headers={"Authorization": f"token {self.tester}"},
            timeout=30,
            **kwargs,
        )

    def planner(
        self, user: str, method: str, path: str, body: Any = None, base: str | None = None
    ) -> requests.Response:
        """The planner's API as ``user`` (a name in ``tokens``), through the proxy: the
        service's, or ``base`` (a user's server, ``/user/alice/taskplanner/api``)."""
        headers = {"Authorization": f"token {self.tokens[user]}"}
        return requests.request(
            method,
            f"{self.url.rstrip('/')}{base or API}{path}",
            headers=headers,
            json=body,
            timeout=60,
        )

    def wait_run(self, user: str, run_id: int, timeout: float = 60) -> dict[str, Any]:
        """The run once it ended (polled: the test waits on another process)."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.planner(user, "GET", f"/runs/{run_id}").json()
            if run.get("status") not in ("queued", "running"):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} did not end: {run}\n{self.logs()}")
            time.sleep(0.3)

    def server(self, user: str) -> dict[str, Any] | None:
        servers = self.hub_api("GET", f"users/{user}").json().get("servers") or {}
        server: dict[str, Any] | None = servers.get("")
        return server

    def start_server(self, user: str, timeout: float = 60) -> None:
        reply = self.hub_api("POST", f"users/{user}/server")
        assert reply.status_code in (201, 202), reply.text
        deadline = time.monotonic() + timeout
        while not (self.server(user) or {}).get("ready"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the server of {user} did not start\n{self.logs()}")
            time.sleep(0.3)

    def logs(self) -> str:
        """The end of the hub's log (its own, the service's and the servers' lines): the
        proxy's complaints while the hub starts would fill it."""
        kept, proxy = [], False
        for line in (self.folder / "hub.log").read_text(errors="replace").splitlines():
            if "[ConfigProxy]" in line:
                proxy = True
            elif line.startswith("["):
                proxy = False
            if not proxy:
                kept.append(line)
        return "\n".join(kept)[-6000:]

    def stop(self) -> None:
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(30)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the hub stops its proxy, service and servers
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stop_orphans()
        for name in self.accounts:
            remove_account(name)
        if not os.environ.get("TASKPLANNER_KEEP_HUB"):
            shutil.rmtree(self.folder, ignore_errors=True)

    def _stop_orphans(self) -> None:
        """End what a hub that died left running: its proxy (which outlives its hub by
        design; the hub removes its pid file when it stops it) and its planner service (whose
        command line names this hub's folder)."""
        pids = set()
        with contextlib.suppress(OSError, ValueError):
            pids.add(int((self.folder / "jupyterhub-proxy.pid").read_text()))
        folder = str(self.folder).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                command = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if folder in command or (
                int(proc.name) in pids and b"configurable-http-proxy" in command
            ):
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGTERM)


CONFIG = """\
from jupyter_taskplanner.hub.config import taskplanner_service

c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_bind_url = {hub_url!r}
c.ConfigurableHTTPProxy.api_url = {proxy_api!r}
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set({users!r})
c.Authenticator.admin_users = set({admins!r})
c.JupyterHub.load_groups = {groups!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
# A server asked to stop with SIGINT lingers (no one confirms); SIGTERM stops it at once.
c.LocalProcessSpawner.interrupt_timeout = 1
c.JupyterHub.services = [{{"name": "tester", "api_token": {tester!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "tester",
        "scopes": [
            "admin:users", "tokens", "admin:servers", "access:servers", "read:hub", "read:services"
        ],
        "services": ["tester"],
    }}
]
taskplanner_service(c, **{planner!r})
{external}"""
EXTERNAL = """\
# An external service: the hub knows its URL and token, someone else starts it.
_entry = c.JupyterHub.services[-1]
del _entry["command"], _entry["environment"]
_entry["api_token"] = {token!r}
"""


PORT_ATTEMPTS = 3
"""How many sets of ports a hub is started on before its tests give up."""


class PortTaken(Exception):
    """A port chosen for the hub, its proxy or the service was taken before it was bound."""


def start_hub(**options: Any) -> Hub:
    """A hub as ``_start_hub`` starts it (its keywords), started again on new ports when one
    it was given was taken first (by any process's connection) between choosing and binding."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return _start_hub(**options)
        except PortTaken:
            if attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("not reached")


def _start_hub(
    *,
    executor: str,
    users: Iterable[str],
    admins: Iterable[str] = (),
    outsiders: Iterable[str] = (),
    groups: dict[str, list[str]] | None = None,
    shell: Iterable[str] = (),
    accounts: bool = False,
    args: Iterable[str] = (),
    owner_root: str | None = None,
    external: bool = False,
) -> Hub:
    """Start a hub whose planner service uses ``executor``; ``users`` use the planner,
    ``admins`` are hub and planner admins, ``outsiders`` are hub users without it;
    ``groups`` ({group: members}) use the planner through their hub group's role only.
    ``accounts``: make a system account (with a private home) for each user, admin and
    group member.
    ``owner_root``: the owners' root folders, relative to the hub's folder.
    ``external``: the hub does not start the service; the test does, as its own process
    with the variables docs/jupyterhub.md lists for an external service (the Helm chart's
    shape)."""
    # Not under pytest's tmp folder (mode 700): jobs run as other users must reach theirs.
    folder = Path(tempfile.mkdtemp(prefix="taskplanner-hub-"))
    os.chmod(folder, 0o711)
    users, admins, outsiders = list(users), list(admins), list(outsiders)
    groups = groups or {}
    members = [name for group in groups.values() for name in group]
    made: list[str] = []
    try:
        if accounts:
            for name in users + admins + members:
                add_account(name)
                made.append(name)
        port = free_port()
        hub_url = f"http://127.0.0.1:{free_port()}"
        tester, service_token = secrets.token_hex(16), secrets.token_hex(16)
        (folder / "homes").mkdir()
        db = folder / "planner" / "taskplanner.db"
        environment = {
            "JUPYTER_CONFIG_DIR": str(folder / "service" / "config"),
            "JUPYTER_DATA_DIR": str(folder / "service" / "data"),
            "JUPYTER_RUNTIME_DIR": str(folder / "service" / "runtime"),
            "HOME": str(folder / "service"),
        }
        planner = {
            "executor": executor,
            "url": f"http://127.0.0.1:{free_port()}",
            "users": users,
            "groups": list(groups),
            "admins": admins,
            "shell": list(shell),
            "proxy_url": f"http://127.0.0.1:{port}",
            "command": [sys.executable, "-m", "jupyter_taskplanner.cli", "service"],
            "args": [
                f"--db-path={db}",
                "--TaskPlannerApp.default_timezone=UTC",
                *(
                    [f"--TaskPlannerService.owner_root_template={folder / owner_root}"]
                    if owner_root
                    else []
                ),
                *args,
            ],
            "environment": environment,
        }
        (folder / "jupyterhub_config.py").write_text(
            CONFIG.format(
                bind_url=f"http://127.0.0.1:{port}",
                hub_url=hub_url,
                proxy_api=f"http://127.0.0.1:{free_port()}",
                proxy=str(PROXY),
                db_url=f"sqlite:///{folder / 'jupyterhub.sqlite'}",
                cookie=str(folder / "cookie_secret"),
                users=users + admins + outsiders + members,
                admins=admins,
                groups={group: {"users": names} for group, names in groups.items()},
                homes=str(folder / "homes"),
                singleuser=str(BIN / "jupyterhub-singleuser"),
                tester=tester,
                planner=planner,
                external=EXTERNAL.format(token=service_token) if external else "",
            )
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("JUPYTER", "PYTEST", "TASKPLANNER"))
        }
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        log = (folder / "hub.log").open("wb")
        process = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(folder / "jupyterhub_config.py")],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
    except BaseException:
        for name in made:
            remove_account(name)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    hub = Hub(f"http://127.0.0.1:{port}/", folder, process, tester, accounts=made, db=db)
    try:
        _wait(hub, lambda: hub.hub_api("GET", "").status_code == 200, "the hub")
        if external:
            hub.service = _start_external(env, planner, service_token, hub_url, folder)
        for name in users + admins + outsiders + members:
            reply = hub.hub_api("POST", f"users/{name}/tokens", json={"note": "hub tests"})
            assert reply.status_code == 201, reply.text
            hub.tokens[name] = reply.json()["token"]
        probe = (users + admins)[0]
        _wait(
            hub, lambda: hub.planner(probe, "GET", "/components").status_code == 200, "the service"
        )
    except BaseException:
        taken = _port_taken(hub)
        hub.stop()
        if taken:
            raise PortTaken(taken) from None
        raise
    return hub


def _port_taken(hub: Hub) -> str | None:
    """The end of the hub's log (the proxy's lines too) if it says a port was taken."""
    log = (hub.folder / "hub.log").read_text(errors="replace")
    return log[-3000:] if "EADDRINUSE" in log or "Address already in use" in log else None


def _start_external(
    env: dict[str, str], planner: dict[str, Any], token: str, hub_url: str, folder: Path
) -> subprocess.Popen[bytes]:
    """The planner service as an external service: the command and variables of
    docs/jupyterhub.md's Helm section (with this test's address)."""
    from traitlets.config import Config

    from jupyter_taskplanner.hub.config import taskplanner_service

    entry = taskplanner_service(Config(), **planner)
    url = urlparse(planner["url"])
    prefix = f"/services/{SERVICE}/"
    variables = {
        **env,
        **entry["environment"],  # TASKPLANNER_HUB_ROLES, and this test's Jupyter folders
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": f"{hub_url}/hub/api",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_CLIENT_ID": f"service-{SERVICE}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }
    with (folder / "hub.log").open("ab") as log:
        return subprocess.Popen(
            [*entry["command"], f"--ip={url.hostname}", f"--port={url.port}"],
            cwd=folder,
            env=variables,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait(hub: Hub, ready: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        if hub.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up\n{hub.logs()}")
        if taken := _port_taken(hub):  # it would wait in vain
            raise PortTaken(taken)
        time.sleep(0.2)


def unique(name: str) -> str:
    """A user name no account of this machine has (system accounts are made from it), nor
    one another worker of a parallel run draws."""
    return f"tp{name}{secrets.token_hex(4)}"


def task_json(reply: requests.Response) -> dict[str, Any]:
    assert reply.status_code in (200, 201, 202), (reply.status_code, reply.text)
    body: dict[str, Any] = json.loads(reply.text)
    return body
