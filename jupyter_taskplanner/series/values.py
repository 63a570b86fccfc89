"""The ``values`` series: parameter sets written inline in the task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ..components.base import RunContext, Series


class ValuesSeries(Series):
    """One set per object of an inline list."""

    type_name: ClassVar[str] = "values"
    title: ClassVar[str] = "Fixed values"
    description: ClassVar[str] = "A list of parameter sets written in the task itself."
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["values"],
        "properties": {
            "values": {
                "type": "array",
                "title": "Sets",
                "description": 'Each set is an object, e.g. {"customer": "ACME", "email": '
                '"boss@acme.example"}; its keys become placeholders.',
                "items": {"type": "object"},
            },
        },
    }

    def sets(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        for item in self.config["values"]:
            yield dict(item)
