"""The registry: stored configs of older component versions are migrated wherever they are used."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from jupyter_taskplanner.components.base import Job
from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.errors import InvalidConfig


class Greeting(Job):
    """Version 2 renamed the config field ``message`` (version 1) to ``text``."""

    type_name = "greeting"
    title = "Greeting"
    config_version = 2
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"text": {"type": "string", "title": "Text"}},
        "required": ["text"],
        "additionalProperties": False,
    }

    @classmethod
    def migrate_config(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        assert from_version == 1
        return {"text": config.pop("message")}


def test_an_old_stored_config_is_migrated_when_instantiated_and_stays_stored_as_is():
    stored = {"type": "greeting", "version": 1, "config": {"message": "hi"}}
    job = Registry([Greeting]).instantiate("job", stored)
    assert job.config == {"text": "hi"}
    assert stored == {"type": "greeting", "version": 1, "config": {"message": "hi"}}


def test_saving_an_old_config_stores_the_current_version():
    entry = Registry([Greeting]).validate(
        "job", {"type": "greeting", "version": 1, "config": {"message": "hi"}}, "jobs[0]"
    )
    assert entry == {"type": "greeting", "version": 2, "config": {"text": "hi"}}


def test_a_config_newer_than_the_installed_component_is_refused_everywhere():
    registry = Registry([Greeting])
    newer = {"type": "greeting", "name": "hello", "version": 3, "config": {"text": "hi"}}
    with pytest.raises(InvalidConfig, match=r"newer than this server knows.*upgrade the plugin"):
        registry.instantiate("job", newer)
    with pytest.raises(InvalidConfig) as caught:
        registry.validate("job", newer, "jobs[0]")
    assert caught.value.field == "jobs[0].version"
