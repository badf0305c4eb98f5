"""The run's event stream over SSE: order, resume with Last-Event-ID, a killed gateway."""

from __future__ import annotations

import httpx

from devstack.processes import kill, stop
from tests.e2e.conftest import Stack, start_gateway
from tests.e2e.sse import read_events
from tests.e2e.test_http_api import start_run, wait_for


async def test_a_run_streams_every_event_to_its_result(http: httpx.AsyncClient, stack: Stack):
    run_id = await start_run(http, "What is 17 * 23?")
    events = await read_events(stack.base_url, run_id)
    assert [e.id for e in events] == list(range(len(events)))  # gap-free offsets from 0
    types = {e.type for e in events}
    assert {"status", "stage", "node", "tool_call", "result"} <= types
    assert events[-1].type == "result"
    assert events[-1].data["status"] == "completed" and "391" in events[-1].data["answer"]
    tool = next(e for e in events if e.type == "tool_call")
    assert tool.data["name"] == "calculator" and tool.data["ok"] is True
    stages = [e.data["stage"] for e in events if e.type == "stage"]
    assert stages == ["context", "execute", "reflect", "done"]
    executing = [
        e.data["name"] for e in events if e.type == "node" and e.data["status"] == "executing"
    ]
    assert executing[0] == "intent" and "tool-calculator" in executing


async def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(
    http: httpx.AsyncClient, stack: Stack
):
    run_id = await start_run(http, "How does a run survive a worker crash?")
    everything = await read_events(stack.base_url, run_id)
    first = await read_events(stack.base_url, run_id, limit=5)
    rest = await read_events(stack.base_url, run_id, last_event_id=first[-1].id)
    assert first + rest == everything
    # A finished run's stream ends after the terminal event, also when resumed at its end.
    assert await read_events(stack.base_url, run_id, last_event_id=everything[-1].id) == []


async def test_stream_resumes_across_a_sigkill_of_the_gateway(stack: Stack, tmp_path):
    gateway = start_gateway(stack.env, tmp_path / "gateway-1.log")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        run_id = await start_run(http, "Plan my trip to Lisbon")
    before = await read_events(gateway.base_url, run_id, stop_when="question")
    assert before[-1].type == "question"

    kill(gateway.proc)  # SIGKILL: no goodbye to anyone
    restarted = start_gateway(stack.env, tmp_path / "gateway-2.log")
    try:
        async with httpx.AsyncClient(base_url=restarted.base_url, timeout=30) as http:
            response = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "Two days"})
            assert response.status_code == 200, response.text
            after = await read_events(restarted.base_url, run_id, last_event_id=before[-1].id)
            assert after[0].id == before[-1].id + 1
            assert before + after == await read_events(restarted.base_url, run_id)
            assert after[-1].type == "result" and "Two days" in after[-1].data["answer"]
            await wait_for(http, run_id, "completed")
    finally:
        stop(restarted.proc)


async def test_idle_streams_get_keep_alive_comments(stack: Stack, tmp_path):
    gateway = start_gateway(
        {**stack.env, "DURABLE_AGENT_SSE_PING_S": "1"}, tmp_path / "gateway.log"
    )
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            run_id = await start_run(http, "Plan my trip to Lisbon")
            await wait_for(http, run_id, "waiting_for_input")
            lines: list[str] = []
            async with http.stream("GET", f"/api/v1/runs/{run_id}/events") as response:
                async for line in response.aiter_lines():
                    lines.append(line)
                    if line.startswith(":"):
                        break
            assert any(line.startswith(": ping") for line in lines)
            await http.post(f"/api/v1/runs/{run_id}/cancel")
    finally:
        stop(gateway.proc)


async def test_bad_last_event_id_and_unknown_run(http: httpx.AsyncClient):
    response = await http.get("/api/v1/runs/run-nope/events")
    assert response.status_code == 404 and response.json()["error"]["code"] == "run_not_found"
    run_id = await start_run(http, "hi")
    response = await http.get(f"/api/v1/runs/{run_id}/events", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 422 and "Last-Event-ID" in response.json()["error"]["message"]
