"""Reading a JSON document a user sends (a request body, a file given to the command line).

Only what JSON and UTF-8 can hold is taken: Python's ``json`` also reads ``NaN`` and
``Infinity`` (which no client could parse back), numbers past a float (``1e999``, read as
infinity) or of more digits than ``int()`` converts, and texts with lone surrogates
(``"\\ud800"``, which cannot be stored); and nesting stops at ``MAX_DEPTH`` levels.  Each is an
``InvalidConfig`` saying so, never an exception of the parser.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import InvalidConfig

MAX_DEPTH = 64
"""How deeply a document's JSON may nest (a task needs far less)."""


class NotJSON(InvalidConfig):
    """The text is no JSON at all (a syntax error or bytes that are no UTF-8)."""


def load(raw: bytes | str, what: str = "the request body") -> Any:
    """The JSON document ``raw`` (``what`` names it in messages; empty: a message starts with
    what is wrong, for a caller that names the document itself), checked as above."""
    invalid = f"{what} is not valid JSON" if what else "not valid JSON"
    too_deep = InvalidConfig(
        f"{what or 'the document'} nests lists or objects more than {MAX_DEPTH} levels deep"
    )
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise NotJSON(f"{invalid}: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise NotJSON(f"{invalid}: {exc}") from None
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise InvalidConfig(f"{what or 'the document'} holds a number too long: {exc}") from None
    check(value, what or "the document")
    return value


def check(value: Any, what: str = "the request body") -> None:
    """Refuse a parsed document (JSON, or YAML) nested too deeply or holding non-Unicode text."""
    if nesting_depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise InvalidConfig(f"{what} nests lists or objects more than {MAX_DEPTH} levels deep")
    where = unencodable_text(value)
    if where is not None:
        raise InvalidConfig(
            f"{where}: a text holds a lone surrogate (such as \\ud800), which is no Unicode "
            "character; send UTF-8 text",
            field=where if not where.startswith("(") else None,
        )


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests lists and objects, counted up to ``limit + 1`` (no recursion)."""
    deepest, level = 0, [value]
    while level and deepest <= limit:
        deepest += 1
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
    return deepest


def unencodable_text(value: Any) -> str | None:
    """Where ``value`` holds a text that is no Unicode (a lone surrogate, which JSON can spell
    but UTF-8 cannot store): its path (``jobs[0].name``), else None."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return path or "(the document)"
        elif isinstance(item, list):
            pending.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _encodable(str(key)):
                    return f"{path} (a key)" if path else "(a key of the document)"
                pending.append((f"{path}.{key}" if path else str(key), child))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _no_constant(name: str) -> Any:
    raise NotJSON(f"the document is not valid JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidConfig(f"the document holds a number too large for a float: {text[:40]}")
    return number
