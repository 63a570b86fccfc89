"""Task operations shared by the REST API and the CLI: validation, scoping, import/export."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .components.base import TaskLinks
from .components.registry import Registry
from .errors import InvalidConfig, TaskNotFound, TaskPlannerError, combine, excerpt
from .model import (
    READ_ONLY_FIELDS,
    WRITABLE_FIELDS,
    SaveContext,
    check_parameters,
    drop_credentials,
    prepare,
    redact_secrets,
    shape_problems,
)
from .paths import OwnerFiles
from .permissions import ADMIN, Access, ComponentRules
from .store import Store
from .vocabulary import MAX_ID, ComponentEntry, TaskRecord

EXPORT_FORMAT = "jupyter-taskplanner"
EXPORT_VERSION = 1


class TaskService:
    """The task use cases, each scoped by the caller's ``Access``."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        default_timezone: str = "UTC",
        folders: Callable[[str], tuple[OwnerFiles, Path]] | None = None,
        rules: ComponentRules | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.default_timezone = default_timezone
        self.folders = folders or (
            lambda owner: (OwnerFiles(Path.cwd()), Path.cwd() / ".snapshots")
        )
        """owner -> (the owner's files, the folder for input snapshots)."""
        self.rules = rules or ComponentRules(lambda owner, resource: True, False)

    def _context(
        self,
        owner: str,
        task_id: int | None = None,
        *,
        importing: bool = False,
        saved_by: str | None = None,
    ) -> SaveContext:
        """What a task of ``owner`` (``task_id``, None when new) is checked against when saved
        (``saved_by``: who saves it, when not its owner).

        ``importing``: the tasks an imported task names may come with the import.
        """
        files, snapshots = self.folders(owner)
        links = TaskLinks(
            owner=owner,
            admin=self.rules.owner_has(owner, ADMIN),
            task_id=task_id,
            find=self.store.find_task,
            missing_ok=importing,
        )
        return SaveContext(
            self.registry,
            owner,
            self.rules,
            files,
            snapshots,
            self.default_timezone,
            links,
            owner_saves=saved_by in (None, owner),
        )

    def public(self, task: TaskRecord) -> TaskRecord:
        """A task as returned to clients: secrets removed."""
        return redact_secrets(task, self.registry)

    def _as_callers(self, access: Access, task: TaskRecord) -> TaskRecord:
        """A stored task to copy or execute as the caller: another owner's without their
        secrets (an admin's copy of a password must not follow the task to a host of theirs)."""
        return task if task["owner"] == access.user else self.public(task)

    def list(
        self,
        access: Access,
        *,
        owner: str | None = None,
        enabled: bool | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: str = "id",
    ) -> tuple[builtins.list[TaskRecord], int]:
        tasks, total = self.store.list_tasks(
            access.scope(owner),
            enabled=enabled,
            search=search,
            limit=limit,
            offset=offset,
            sort=sort,
        )
        return [self.public(task) for task in tasks], total

    def get(self, access: Access, task_id: int) -> TaskRecord:
        return self.store.get_task(task_id, access.task_scope())

    def create(self, access: Access, body: Any, *, owner: str | None = None) -> TaskRecord:
        """Create a task owned by the caller (or, for admin imports, by ``owner``)."""
        owner = owner or access.user
        return self.store.create_task(owner, prepare(body, self._context(owner)))

    def update(
        self,
        access: Access,
        task_id: int,
        body: Any,
        *,
        partial: bool,
        expected_revision: int | None = None,
    ) -> TaskRecord:
        """Replace (PUT) or merge (PATCH) the writable fields of a task."""
        stored = self.get(access, task_id)
        context = self._context(stored["owner"], stored["id"], saved_by=access.user)
        document = prepare(body, context, stored=stored, partial=partial)
        if expected_revision is None:
            expected_revision = body.get("revision")
        return self.store.update_task(
            task_id, access.task_scope(), document, expected_revision=expected_revision
        )

    def set_enabled(self, access: Access, task_id: int, enabled: bool) -> TaskRecord:
        return self.store.update_task(task_id, access.task_scope(), {"enabled": enabled})

    def delete(self, access: Access, task_id: int) -> None:
        self.store.delete_task(task_id, access.task_scope())

    def copy(self, access: Access, task_id: int, body: Any = None) -> TaskRecord:
        """A copy owned by the caller (an admin's copy belongs to the admin, without the
        owner's secrets)."""
        stored = self._as_callers(access, self.get(access, task_id))
        overrides = {} if body is None else body
        if not isinstance(overrides, dict) or set(overrides) - {"name", "enabled"}:
            raise InvalidConfig("the copy body may only hold 'name' and 'enabled'")
        document: dict[str, Any] = {field: stored[field] for field in WRITABLE_FIELDS}
        document["settings"] = stored["settings"]
        document["name"] = f"Copy of {stored['name']}"[:200]
        document.update(overrides)
        context = self._context(access.user)
        return self.store.create_task(access.user, prepare(document, context, new_credentials=True))

    def export(self, access: Access, task_ids: builtins.list[int]) -> dict[str, Any]:
        """The export document of some tasks (secrets left out)."""
        tasks = []
        for task_id in task_ids:
            task = self.public(self.get(access, task_id))
            drop_credentials(task, self.registry)
            for component in _all_components(task):
                component.pop("secrets", None)
            # With its id and revision, an edited export imported again updates the task.
            exported: dict[str, Any] = {
                "id": task["id"],
                "revision": task["revision"],
                "owner": task["owner"],
            }
            for key in WRITABLE_FIELDS:
                exported[key] = task[key]
            exported["settings"] = task["settings"]
            tasks.append(exported)
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "tasks": tasks}

    def adhoc(self, access: Access, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task document and parameters of an ad-hoc execution (``POST /execute``).

        The body is a task without triggers (``name`` optional), or ``{"task_id": N}`` for
        a stored task the caller may read; either way checked as a task of the caller, who
        runs it.  Optional ``parameters`` as for a run.
        """
        if not isinstance(body, dict):
            raise InvalidConfig("the body must be a JSON object: a task to run, or a task_id")
        source = dict(body)
        given = source.pop("parameters", None)
        parameters = check_parameters({} if given is None else given)
        if "task_id" in source:
            raw_id = source.pop("task_id")
            if source:
                raise InvalidConfig(
                    f"{sorted(source)[0]}: with task_id the body holds only parameters",
                    field=sorted(source)[0],
                )
            task_id = whole_number(raw_id)
            if task_id is None:
                raise InvalidConfig("task_id: a task id, an integer", field="task_id")
            stored = self._as_callers(access, self.get(access, parse_task_id(str(task_id))))
            source = {field: stored[field] for field in WRITABLE_FIELDS if field != "triggers"}
            source["settings"] = stored["settings"]
        elif source.get("triggers"):
            raise InvalidConfig(
                "triggers: an ad-hoc execution runs at once; leave the triggers out",
                field="triggers",
            )
        document = prepare({"name": ADHOC_NAME, **source}, self._context(access.user))
        return document, parameters

    def import_(
        self, access: Access, body: Any, *, task_id: int | None = None
    ) -> tuple[builtins.list[TaskRecord], int]:
        """Import an export document, a list of tasks or one task; all or none.

        A task with an ``id`` updates that task (the product's rule): it must be the
        caller's, or the caller an admin (the owner stays as stored); its ``revision``, when
        given, must be the stored one (409 otherwise); an unknown id is a 404.  A task
        without an id is created, owned by the caller (an admin may keep its ``owner``).
        ``task_id`` (``POST /tasks/{id}/import``) imports one task into that task.  Returns
        the tasks in the body's order and how many were created.
        """
        items = _import_items(body)
        if task_id is not None:
            items = [_into(items, task_id)]
        problems: list[TaskPlannerError] = []
        creates: builtins.list[tuple[str, dict[str, Any]]] = []
        updates: builtins.list[tuple[int, dict[str, Any], int | None]] = []
        order: builtins.list[tuple[bool, int]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(InvalidConfig(f"tasks[{index}]: each task must be a JSON object"))
                continue
            writable = {key: value for key, value in item.items() if key not in READ_ONLY_FIELDS}
            # The fields the server sets are ignored, but must be of their types all the same.
            given = {key: value for key, value in item.items() if key in READ_ONLY_FIELDS}
            shaped = shape_problems(given, require_name=False)
            if shaped:
                problems += [problem.within(f"tasks[{index}]") for problem in shaped]
                continue
            try:
                if "id" in item:
                    stored = self._import_target(access, _import_id(item["id"]))
                    context = self._context(
                        stored["owner"], stored["id"], importing=True, saved_by=access.user
                    )
                    document = prepare(writable, context, stored=stored)
                    order.append((False, len(updates)))
                    updates.append((stored["id"], document, _import_revision(item)))
                else:
                    owner = access.check_import_owner(item.get("owner"))
                    context = self._context(owner, importing=True)
                    document = prepare(writable, context, new_credentials=True)
                    order.append((True, len(creates)))
                    creates.append((owner, document))
            except TaskPlannerError as exc:
                problems.append(exc.within(f"tasks[{index}]"))
        if problems:
            raise combine(problems)
        created, updated = self.store.import_tasks(creates, updates)
        return [created[i] if new else updated[i] for new, i in order], len(created)

    def _import_target(self, access: Access, task_id: int) -> TaskRecord:
        """The task an imported task with this id updates (``TaskNotFound`` at ``id``)."""
        try:
            return self.get(access, task_id)
        except TaskNotFound as exc:
            raise TaskNotFound(f"id: {exc.message}", field="id") from None


ADHOC_NAME = "Ad-hoc run"


def _into(items: list[Any], task_id: int) -> Any:
    """The one task of an import into task ``task_id``, its id set (or checked)."""
    if len(items) != 1:
        raise InvalidConfig(
            f"an import into task {task_id} takes one task, not {len(items)}", field="tasks"
        )
    [item] = items
    if not isinstance(item, dict):
        raise InvalidConfig("the task must be a JSON object")
    if item.get("id", task_id) != task_id:
        raise InvalidConfig(
            f"id: the body is task {item['id']}, not task {task_id}; leave the id out", field="id"
        )
    return {**item, "id": task_id}


def whole_number(value: Any) -> int | None:
    """``value`` as an int when JSON Schema calls it an integer (``3``, also ``3.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _import_id(value: Any) -> int:
    task_id = whole_number(value)
    if task_id is None:
        raise InvalidConfig("id: a task id (an integer); leave it out to create", field="id")
    return parse_task_id(str(task_id))


def _import_revision(item: dict[str, Any]) -> int | None:
    if "revision" not in item:
        return None
    revision = whole_number(item["revision"])
    if revision is None or revision < 1:
        raise InvalidConfig(
            "revision: the task's revision, an integer from 1; leave it out to skip the check",
            field="revision",
        )
    return revision


def _import_items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and "tasks" in body:
        unknown = sorted(set(body) - {"format", "version", "tasks"})
        if unknown:
            raise InvalidConfig(
                f"{excerpt(unknown[0])}: unknown field of an export document (allowed: "
                "format, tasks, version)",
                field=unknown[0][:80],
            )
        if body.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise InvalidConfig(f"format: expected {EXPORT_FORMAT!r}", field="format")
        version = whole_number(body.get("version", EXPORT_VERSION))
        if version is None or version < 1:
            raise InvalidConfig(
                f"version: the export format version, an integer from 1, not "
                f"{excerpt(body['version'])}",
                field="version",
            )
        if version > EXPORT_VERSION:
            raise InvalidConfig(
                f"version: export version {version} is newer than this server "
                f"reads ({EXPORT_VERSION}); upgrade jupyter-taskplanner",
                field="version",
            )
        if not isinstance(body["tasks"], list):
            raise InvalidConfig("tasks: must be a list of tasks", field="tasks")
        return body["tasks"]
    if isinstance(body, dict):
        return [body]
    raise InvalidConfig("the import body must be an export document, a task or a list of tasks")


def _all_components(task: TaskRecord) -> list[ComponentEntry]:
    found = [*task["triggers"], *task["jobs"], *task["actions"]]
    series = task.get("series")
    return [*found, series] if series else found


def is_id(raw: str) -> bool:
    """Whether ``raw`` is an id as a URL writes it: plain ASCII digits, 1 to ``MAX_ID``."""
    # int() also takes " 1", "+1" and "1_0", and refuses more than 4,300 digits (ValueError).
    return raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= MAX_ID


def parse_task_id(raw: str) -> int:
    """A task id from a URL or command line; ``TaskNotFound`` for anything not an id."""
    if not is_id(raw):
        raise TaskNotFound(f"no task with id {excerpt(raw)}")
    return int(raw)
