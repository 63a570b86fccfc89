"""The ``python`` series: parameter sets returned by a Python callable."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..components.base import RunContext, Series
from ..errors import InvalidConfig

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_callable(reference: str) -> Callable[..., Any]:
    """The object named by ``module:attribute`` (the attribute may be dotted)."""
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing target module is a config error; a missing import inside the user's
        # module is their code's error and keeps its traceback.
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise
        raise InvalidConfig(
            f"function: no module named {module_name!r} (looked in your root folder and the "
            "installed packages)",
            field="function",
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidConfig(
                f"function: {module_name} has no {attribute!r}", field="function"
            ) from None
    if not callable(target):
        raise InvalidConfig(f"function: {reference} is not callable", field="function")
    function: Callable[..., Any] = target
    return function


class PythonSeries(Series):
    """One set per dict of the iterable a Python callable returns (or yields)."""

    type_name: ClassVar[str] = "python"
    runs_code: ClassVar[bool] = True
    title: ClassVar[str] = "Python function"
    description: ClassVar[str] = (
        "Call module:function(**kwargs); it returns or yields dicts, one per set. Modules in "
        "your root folder can be imported."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["function"],
        "properties": {
            "function": {
                "type": "string",
                "title": "Function",
                "description": "module:callable, e.g. reports.customers:active_customers.",
            },
            "kwargs": {
                "type": "object",
                "title": "Keyword arguments",
                "description": "Passed to the function; placeholders in strings are filled.",
                "default": {},
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if not _REFERENCE.match(config["function"]):
            raise InvalidConfig(
                f"function: {config['function']!r} is not module:callable, e.g. "
                "reports.customers:active_customers",
                field="function",
            )

    def sets(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        reference = self.config["function"]
        root = str(Path(ctx.owner_root).resolve())
        # The owner's own modules live in their root folder; keep it importable while the
        # callable (which may be a generator importing lazily) runs.
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)
        try:
            produced = load_callable(reference)(**ctx.fill(self.config.get("kwargs", {})))
            if isinstance(produced, Mapping | str | bytes) or not isinstance(produced, Iterable):
                raise InvalidConfig(
                    f"function: {reference} returned {type(produced).__name__} "
                    f"{_short(produced)}; return a list of dicts or yield dicts",
                    field="function",
                )
            for index, item in enumerate(produced):
                if not isinstance(item, Mapping):
                    raise InvalidConfig(
                        f"function: item {index} from {reference} is {type(item).__name__} "
                        f"{_short(item)}, not a dict",
                        field="function",
                    )
                yield dict(item)
        finally:
            if added:
                sys.path.remove(root)
