"""Reading a run's durable event stream (`temporalio.contrib.workflow_streams`) by polling its
read-only query.

The library's own subscriber long-polls with Updates. Each Update is written to the run's
history, and in the chaos suite a Temporal server restart in the middle of one left a run's
workflow task failing for good (the server re-delivered an Update it had already completed, and
the SDK then hit a nondeterminism error replaying it). The stream's query
(`__temporal_workflow_stream_poll`, the protocol the library uses to drain closed runs) returns
the same offset-addressed items, writes nothing to history, and is safe to repeat — so the
gateway polls it instead.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamState
from temporalio.service import RPCError, RPCStatusCode

from shared import EVENTS_TOPIC, StreamEvent

POLL_QUERY = "__temporal_workflow_stream_poll"
# An idle stream polls less and less often, up to this (every poll is a query a worker answers).
MAX_IDLE_POLL_S = 1.0
CLOSED_CHECK_EVERY = 10
TRANSIENT = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN)


class StreamUnavailable(Exception):
    """Temporal stayed unreachable longer than the stream waits; the client should reconnect."""


async def follow_events(
    client: Client,
    run_id: str,
    from_offset: int,
    *,
    interval: float,
    query_timeout: float,
    outage_budget: float = 30.0,
) -> AsyncIterator[tuple[int, StreamEvent]]:
    """(offset, event) from `from_offset` on, as they are published. Ends when the run is closed
    and every retained event was read."""
    handle = client.get_workflow_handle(run_id)
    converter = client.data_converter.payload_converter
    offset = from_offset
    outage = 0.0
    empty_polls = 0
    delay = interval
    while True:
        try:
            result: PollResult = await handle.query(
                POLL_QUERY,
                PollInput(topics=[EVENTS_TOPIC], from_offset=offset),
                result_type=PollResult,
                rpc_timeout=timedelta(seconds=query_timeout),
            )
            outage = 0.0
        except RPCError as exc:
            if exc.status not in TRANSIENT or outage >= outage_budget:
                raise StreamUnavailable(exc.message) from None
            outage += interval * 5
            await asyncio.sleep(interval * 5)
            continue
        except RuntimeError as exc:  # the lazy client cannot connect right now
            if outage >= outage_budget:
                raise StreamUnavailable(str(exc)) from None
            outage += interval * 5
            await asyncio.sleep(interval * 5)
            continue
        for item in result.items:
            yield item.offset, _decode(converter, item.data)
        offset = result.next_offset
        if result.items or result.more_ready:
            empty_polls = 0
            delay = interval
            continue
        # Nothing new: is there anything left to wait for? (Checked now and then: a describe
        # costs more than a poll.)
        if empty_polls % CLOSED_CHECK_EVERY == 0 and await _closed(handle, query_timeout):
            return
        empty_polls += 1
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, max(MAX_IDLE_POLL_S, interval))


def events_from_tail(
    client: Client, stream: WorkflowStreamState, from_offset: int
) -> Iterator[tuple[int, StreamEvent]]:
    """(offset, event) from `from_offset` on, out of the stream tail a finished run keeps in its
    final state (read from history: no worker, no replay). An offset older than the tail starts
    at its oldest item, as the live stream does."""
    converter = client.data_converter.payload_converter
    start = max(from_offset - stream.base_offset, 0)
    for index, item in enumerate(stream.log[start:], start=start):
        yield stream.base_offset + index, _decode(converter, item.data)


def _decode(converter: Any, data: str) -> StreamEvent:
    payload = Payload()
    payload.ParseFromString(base64.b64decode(data))
    event: StreamEvent = converter.from_payload(payload, StreamEvent)
    return event


async def _closed(handle: WorkflowHandle[Any, Any], query_timeout: float) -> bool:
    try:
        description = await handle.describe(rpc_timeout=timedelta(seconds=query_timeout))
    except RPCError:
        return False
    return description.status not in (None, WorkflowExecutionStatus.RUNNING)
