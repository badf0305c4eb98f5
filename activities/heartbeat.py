"""Heartbeat while a coroutine runs, so that Temporal sees a live activity and can cancel it.

Temporal delivers an activity's cancellation only through a heartbeat response, and notices a
dead worker only through a missed heartbeat. An LLM call or a tool may take long; rather than
sprinkling ``activity.heartbeat()`` through them, every activity awaits its work through
:func:`heartbeating`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

DEFAULT_INTERVAL = timedelta(seconds=2)


async def heartbeating(work: Awaitable[T]) -> T:
    info = activity.info()
    if info.is_local:  # a local activity has no heartbeat: it lives and dies with its worker
        return await work
    timeout = info.heartbeat_timeout
    # Heartbeats are throttled by the SDK to 0.8 x the timeout; a third keeps us well inside it.
    interval = (timeout / 3 if timeout else DEFAULT_INTERVAL).total_seconds()

    async def beat() -> None:
        # The first beat waits an interval: most activities (a tool call, a stage on a fast
        # model) end well before, and a heartbeat each would cost a round trip to the server
        # for nothing. Temporal counts the heartbeat timeout from the attempt's start, so a
        # worker that dies before the first beat is noticed just as soon.
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat()

    beater = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beater.cancel()
