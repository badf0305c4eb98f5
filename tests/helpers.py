"""Helpers shared by the tests: waiting on a condition with a deadline (never a bare sleep), and
starting a child that a test can Ctrl-C however the test itself was launched."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
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


def until(
    probe: Callable[[], T],
    predicate: Callable[[T], bool] = bool,
    *,
    deadline_s: float = 20.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """`eventually` for code that is not async: poll `probe` until `predicate` holds."""
    deadline = time.monotonic() + deadline_s
    last: T | None = None
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if predicate(last):
                return last
        except Exception as exc:  # the thing we wait for may not exist yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {deadline_s}s; last={last!r} error={last_error!r}")


# Run by `python -c` in front of a command: restore SIGINT's default action, then exec the command.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def with_default_sigint(cmd: Sequence[str]) -> list[str]:
    """`cmd` with SIGINT's default action, whatever this process inherited.

    A test process started as a background job (`make test &`, nohup, some CI runners) inherits
    SIGINT *ignored*, exec keeps it ignored, and a child then never sees the Ctrl-C a test sends
    it. A `preexec_fn` could reset it too, but is unsafe in a process with threads (the SDK's);
    a tiny exec wrapper is not.
    """
    return [sys.executable, "-c", _DEFAULT_SIGINT, *cmd]
