"""The server's memory and the garbage collector: start-up objects stay out of full passes."""

from __future__ import annotations

import gc


async def test_objects_of_the_start_are_frozen_until_the_planner_stops(api, jp_serverapp):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    reply = await api("alice")("GET", "/tasks")  # the first call starts the planner
    assert reply.status == 200
    assert gc.get_freeze_count() > 0
    app = jp_serverapp.extension_manager.extension_apps["jupyter_taskplanner"]
    (extension,) = app
    await extension.stop_extension()
    assert gc.get_freeze_count() == 0
