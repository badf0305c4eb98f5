"""GET /api/v1/runs/{run_id}/events: the run's durable event stream as Server-Sent Events.

Each event's `id` is its offset in the run's stream (`temporalio.contrib.workflow_streams`, read
through its query: see `app.event_stream`), so a
client that reconnects with `Last-Event-ID: <id>` gets exactly the events after it — from any
gateway process, including one started after the previous one was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from temporalio.service import RPCError

from app.auth import Tenant
from app.deps import AppSettings, TemporalClient
from app.errors import ApiError, InvalidInput, TooManyStreams
from app.event_stream import StreamUnavailable, events_from_tail, follow_events
from app.routes.runs import ERRORS, RunId
from app.run_access import RunRead, describe_owned, load_run, never_ran
from shared import StreamEvent
from workflows.state import RunStatus

router = APIRouter(prefix="/api/v1/runs", tags=["events"])
logger = logging.getLogger(__name__)

TERMINAL_EVENT = "result"
# How often a stream of a run that no worker has taken yet checks whether one has.
NOT_STARTED_POLL_S = 1.0
# An event id of this stream: ASCII digits only (str.isdigit also accepts "²", which int() refuses).
EVENT_ID = re.compile(r"[0-9]{1,18}")
# How long a stream may take to end itself once the gateway is told to stop (it takes
# milliseconds: the wait for the next event is simply abandoned).
STREAM_FAREWELL_S = 5.0


def _start_offset(last_event_id: str | None, from_offset: int | None) -> int:
    if from_offset is not None:
        return from_offset
    if last_event_id is None or last_event_id == "":
        return 0
    if not EVENT_ID.fullmatch(last_event_id):
        raise InvalidInput(
            "Last-Event-ID must be the id of an event of this stream (a number)",
            [{"path": "header.Last-Event-ID"}],
        )
    return int(last_event_id) + 1


@router.get(
    "/{run_id}/events",
    responses={
        **ERRORS,
        200: {"content": {"text/event-stream": {}}},
        429: {**ERRORS[503], "description": "Too many event streams open for this tenant"},
    },
    response_class=EventSourceResponse,
    summary="Stream the run's events (Server-Sent Events; resume with Last-Event-ID)",
)
async def stream_run_events(
    run_id: RunId,
    request: Request,
    client: TemporalClient,
    settings: AppSettings,
    tenant: Tenant,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    from_offset: Annotated[
        int | None,
        Query(ge=0, description="Start at this offset (for clients that cannot set headers)."),
    ] = None,
) -> EventSourceResponse:
    start = _start_offset(last_event_id, from_offset)  # 422 before anything else
    read = await load_run(client, run_id, settings, tenant)  # 404 / 503 before the stream starts
    if read.state is not None and read.state.final_stream is not None:
        # A finished run: its events come with its final state, read from its history.
        tail = list(events_from_tail(client, read.state.final_stream, start))
        return EventSourceResponse(_replay(tail), ping=int(settings.sse_ping_s))
    waiting_to_start = read.state is None and read.status is RunStatus.PENDING
    if read.state is None and not waiting_to_start:
        # Stuck, or ended by Temporal before it could record anything: nothing to stream but
        # the outcome.
        return EventSourceResponse(_outcome_only(read), ping=int(settings.sse_ping_s))

    open_streams: Counter[str | None] = request.app.state.open_streams
    if open_streams[tenant] >= settings.max_streams_per_tenant:
        raise TooManyStreams(
            f"{open_streams[tenant]} event streams are open for this tenant on this gateway; "
            "close one or retry later",
            {"limit": settings.max_streams_per_tenant},
        )
    open_streams[tenant] += 1

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            if waiting_to_start:
                # No worker has taken the run's first task: its stream cannot be read yet (a
                # query would only wait). Hold the connection (pings keep it alive) until then.
                while True:
                    if not await _not_started(client, run_id, settings):
                        break
                    await asyncio.sleep(NOT_STARTED_POLL_S)
            async for offset, event in follow_events(
                client,
                run_id,
                start,
                interval=settings.sse_poll_interval_s,
                query_timeout=settings.query_timeout_s,
            ):
                yield ServerSentEvent(
                    id=str(offset), event=event.type, data=event.model_dump_json()
                )
                if event.type == TERMINAL_EVENT:
                    return
        except (StreamUnavailable, RPCError, ApiError) as exc:
            # The client reconnects with Last-Event-ID and loses nothing.
            logger.warning("event stream of %s interrupted: %s", run_id, exc)
        finally:
            open_streams[tenant] -= 1

    # On SIGTERM sse-starlette sets `shutdown` and, after the grace period, cancels the stream
    # mid-chunk; ending it ourselves first sends the closing chunk, so the client sees a clean
    # end of stream and reconnects (to another gateway) with its Last-Event-ID.
    shutdown = anyio.Event()
    return EventSourceResponse(
        _until_set(events(), shutdown),
        ping=int(settings.sse_ping_s),
        shutdown_event=shutdown,
        shutdown_grace_period=STREAM_FAREWELL_S,
    )


async def _until_set(
    source: AsyncIterator[ServerSentEvent], stop: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    """`source`'s items until `stop` is set; then `source` is closed (its `finally` runs)."""
    stopping = asyncio.ensure_future(stop.wait())
    following: asyncio.Future[ServerSentEvent] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(source))
            await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                return
            try:
                item = following.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stopping.cancel()
        # A client that went away cancels this generator, not the task that reads `source`:
        # stop that one first, or `source` (still running) could not be closed and its own
        # `finally` (the tenant's stream count) would never run.
        if following is not None and not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
        await source.aclose()  # type: ignore[attr-defined]


async def _replay(tail: list[tuple[int, StreamEvent]]) -> AsyncIterator[ServerSentEvent]:
    for offset, event in tail:
        yield ServerSentEvent(id=str(offset), event=event.type, data=event.model_dump_json())


async def _not_started(client: TemporalClient, run_id: str, settings: AppSettings) -> bool:
    description = await describe_owned(client, run_id, settings, None)
    return await never_ran(client, description, settings)


async def _outcome_only(read: RunRead) -> AsyncIterator[ServerSentEvent]:
    """One `result` event (with no id: it is not part of the run's stream) for a run whose
    stream cannot be read."""
    event = StreamEvent(
        type=TERMINAL_EVENT,
        at=read.updated_at or datetime.now(UTC),
        data={"status": str(read.status), "answer": None, "errors": read.errors},
    )
    yield ServerSentEvent(event=event.type, data=event.model_dump_json())
