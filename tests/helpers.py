"""Helpers shared by the tests: waiting on a condition with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool] = bool,
    *,
    deadline_s: float = 20.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call `probe` until `predicate(result)` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + deadline_s
    last: T | None = None
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
            if predicate(last):
                return last
        except Exception as exc:  # the thing we wait for may not exist yet
            last_error = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached in {deadline_s}s; last={last!r} error={last_error!r}")
