"""A user tool (`tools.yaml`: `tests.e2e.held_tool:hold_parcel`) that stays running until the
test releases it, so a test can SIGTERM a worker while an activity is in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path


def _mark(path: Path) -> None:
    with path.open("a") as marks:
        marks.write("x\n")


async def hold_parcel(path: str) -> str:
    """Hold the parcel at path until it is released."""
    base = Path(path)
    await asyncio.to_thread(_mark, Path(f"{base}.started"))
    # Async, so that a worker shutting down can cancel it. The test (another process) releases
    # it by creating a file: nothing lighter crosses the process boundary.
    release = Path(f"{base}.release")
    while not await asyncio.to_thread(release.exists):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.to_thread(_mark, Path(f"{base}.done"))
    return f"parcel {base.name} released"
