"""Push a message to the open pages of a Channels group from synchronous code."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer


def _loop_runs_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def group_send_blocking(layer: BaseChannelLayer, group: str, message: dict[str, Any]) -> None:
    """Send ``message`` to ``group`` through ``layer``; block until the layer took it.

    Exceptions of the layer are the caller's to handle.
    """
    send = async_to_sync(layer.group_send)
    if _loop_runs_here():
        # A synchronous caller on a thread that runs an event loop (a notebook, Playwright's
        # sync API; Django lets it use the ORM under DJANGO_ALLOW_ASYNC_UNSAFE): async_to_sync
        # will not block such a thread, so send from a worker thread and wait for it there.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(send, group, message).result()
    else:
        send(group, message)
