"""Reading a run's Server-Sent Events in tests (httpx-sse)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: dict[str, Any]


async def read_events(
    base_url: str,
    run_id: str,
    *,
    last_event_id: int | None = None,
    stop_when: str = "result",
    limit: int | None = None,
    headers: dict[str, str] | None = None,
) -> list[Event]:
    """Events from the stream until one of type `stop_when` (or `limit` events, or the end)."""
    sent = dict(headers or {})
    if last_event_id is not None:
        sent["Last-Event-ID"] = str(last_event_id)
    events: list[Event] = []
    timeout = httpx.Timeout(30, read=30)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as http,
        aconnect_sse(http, "GET", f"/api/v1/runs/{run_id}/events", headers=sent) as source,
    ):
        assert source.response.status_code == 200, await source.response.aread()
        async for sse in source.aiter_sse():
            if not sse.data:
                continue
            event = json.loads(sse.data)
            events.append(Event(int(sse.id), event["type"], event["data"]))
            if event["type"] == stop_when or (limit is not None and len(events) >= limit):
                break
    return events
