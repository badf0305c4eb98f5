"""One trace from `POST /api/v1/runs` through every activity, and replays that add no span.

The gateway (create_app, served by uvicorn over real HTTP) and the worker run in this process so
that both export to one in-memory exporter; the dev server is the real one. The worker keeps no
workflow in its cache, so every workflow task replays the run's history: a span created on
replay would show up as a duplicate.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

from app.main import create_app
from config import Settings
from devstack.processes import free_port
from plugin import DurableAgentPlugin
from temporal_client import connect, ensure_search_attributes
from tests.helpers import eventually
from worker import build_worker

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    yield EXPORTER


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), what="gateway started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_post_runs_through_every_activity(
    spans: InMemorySpanExporter, settings: Settings
) -> None:
    traced = settings.model_copy(
        update={"otel_traces_exporter": "console", "max_cached_workflows": 0}
    )
    assert traced.tracing_enabled
    client = await connect(traced)
    await ensure_search_attributes(client, traced.namespace)
    spans.clear()
    async with build_worker(client, traced), gateway(traced) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            response = await http.post("/api/v1/runs", json={"query": "What is 17 * 23?"})
            assert response.status_code == 201, response.text
            run_id = response.json()["run_id"]
            handle = client.get_workflow_handle(run_id)
            await handle.result()

    finished = list(spans.get_finished_spans())
    post = named(finished, "POST /api/v1/runs")
    assert len(post) == 1
    trace_id = post[0].context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    start = named(in_trace, "StartWorkflow:AgentWorkflow")
    assert len(start) == 1 and start[0].attributes["temporalWorkflowID"] == run_id
    run = named(in_trace, "RunWorkflow:AgentWorkflow")
    assert len(run) == 1 and run[0].parent.span_id == start[0].context.span_id
    # StartWorkflow sits under the gateway's request span.
    ancestor = start[0]
    while ancestor.parent is not None and ancestor.parent.span_id in by_id:
        ancestor = by_id[ancestor.parent.span_id]
    assert ancestor is post[0]

    history = await handle.fetch_history()
    scheduled = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    assert {"analyze_intent", "assess_context", "run_tool", "make_plan", "run_step"} <= set(
        scheduled
    )
    # Every activity: one StartActivity span (from the workflow, not repeated by the replays
    # of later tasks) and one RunActivity span under it, all in the request's trace.
    for activity_type, times in scheduled.items():
        started = named(in_trace, f"StartActivity:{activity_type}")
        ran = named(in_trace, f"RunActivity:{activity_type}")
        assert len(started) == times, (activity_type, len(started), times)
        assert len(ran) == times, (activity_type, len(ran), times)
        assert {r.parent.span_id for r in ran} <= {s.context.span_id for s in started}
    assert len(named(finished, "CompleteWorkflow:AgentWorkflow")) <= 1

    # Replaying the whole history again adds no span at all.
    before = len(spans.get_finished_spans())
    replayer = Replayer(
        workflows=[], plugins=[DurableAgentPlugin()], interceptors=[TracingInterceptor()]
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    assert len(spans.get_finished_spans()) == before
