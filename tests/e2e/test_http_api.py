"""The gateway over real HTTP, with a real worker process and a real dev server."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

from devstack.processes import temporal_binary
from tests.e2e.conftest import Stack
from tests.helpers import eventually


async def start_run(http: httpx.AsyncClient, query: str) -> str:
    response = await http.post("/api/v1/runs", json={"query": query})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["run_id"].startswith("run-")
    return str(body["run_id"])


async def wait_for(http: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        response = await http.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    return await eventually(probe, lambda s: s["status"] == status, what=f"run {status}")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return dict(error)


async def test_chat_completes_at_the_intent_stage(http: httpx.AsyncClient) -> None:
    run_id = await start_run(http, "hi")
    state = await wait_for(http, run_id, "completed")
    assert state["stage"] == "done" and state["answer"].startswith("Hello")
    assert state["run_id"] == run_id
    node = state["nodes"][0]
    assert node["name"] == "intent" and node["status"] == "completed"
    assert node["started_at"] and node["ended_at"]
    assert state["usage"]["tokens_in"] > 0
    assert state["created_at"] <= state["updated_at"]


async def test_calculator(http: httpx.AsyncClient) -> None:
    state = await wait_for(http, await start_run(http, "What is 17 * 23?"), "completed")
    assert "391" in state["answer"]
    assert state["tool_calls"][0]["name"] == "calculator"


async def test_question_then_input_then_answer(http: httpx.AsyncClient) -> None:
    run_id = await start_run(http, "Plan my trip to Lisbon")
    waiting = await wait_for(http, run_id, "waiting_for_input")
    assert waiting["question"] and waiting["stage"] == "context"

    assert_error(
        await http.post(f"/api/v1/runs/{run_id}/input", json={"text": ""}), 422, "invalid_request"
    )
    too_long = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "x" * 101})
    assert "100 characters" in assert_error(too_long, 422, "invalid_input")["message"]
    assert_error(
        await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "  "}), 422, "invalid_input"
    )

    response = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "Four days in May"})
    assert response.status_code == 200, response.text
    assert response.json() == {"run_id": run_id, "status": "running", "pending": False}
    state = await wait_for(http, run_id, "completed")
    assert "Four days in May" in state["answer"]

    again = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "more"})
    assert "completed" in assert_error(again, 409, "invalid_state")["message"]


async def test_cancel(http: httpx.AsyncClient) -> None:
    run_id = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, run_id, "waiting_for_input")
    response = await http.post(f"/api/v1/runs/{run_id}/cancel")
    assert response.status_code == 202 and response.json()["run_id"] == run_id
    await wait_for(http, run_id, "cancelled")
    again = await http.post(f"/api/v1/runs/{run_id}/cancel")
    assert "cancelled" in assert_error(again, 409, "invalid_state")["message"]


async def test_pause_and_resume(http: httpx.AsyncClient) -> None:
    run_id = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, run_id, "waiting_for_input")
    assert (await http.post(f"/api/v1/runs/{run_id}/pause")).status_code == 202
    assert_error(await http.post(f"/api/v1/runs/{run_id}/pause"), 409, "invalid_state")
    await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "Sintra for a day"})
    await wait_for(http, run_id, "paused")
    assert (await http.post(f"/api/v1/runs/{run_id}/resume")).status_code == 202
    state = await wait_for(http, run_id, "completed")
    assert "Sintra" in state["answer"]


async def test_bad_requests_get_clear_json_errors(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/runs/run-unknown",):
        assert_error(await http.get(path), 404, "run_not_found")
    assert_error(
        await http.post("/api/v1/runs/run-unknown/input", json={"text": "x"}), 404, "run_not_found"
    )
    assert_error(await http.post("/api/v1/runs/run-unknown/cancel"), 404, "run_not_found")
    assert_error(await http.post("/api/v1/runs/run-unknown/pause"), 404, "run_not_found")

    unknown_field = await http.post("/api/v1/runs", json={"query": "hi", "extra": 1})
    details = assert_error(unknown_field, 422, "invalid_request")["details"]
    assert details[0]["path"] == "body.extra"
    assert_error(await http.post("/api/v1/runs", json={"query": 5}), 422, "invalid_request")
    assert_error(await http.post("/api/v1/runs", json={}), 422, "invalid_request")
    assert_error(await http.post("/api/v1/runs", json={"query": "   "}), 422, "invalid_input")
    bad_json = await http.post(
        "/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(bad_json, 422, "invalid_request")
    assert_error(await http.get("/api/v1/nothing-here"), 404, "not_found")


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [temporal_binary(), "workflow", *args, "--address", stack.temporal_address],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


async def test_operators_drive_a_run_with_the_temporal_cli(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    run_id = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, run_id, "waiting_for_input")

    queried = _cli(
        stack, "query", "--workflow-id", run_id, "--name", "get_state", "--output", "json"
    )
    assert "waiting_for_input" in queried.stdout

    # Malformed payloads are logged and dropped; the run keeps waiting and stays queryable.
    for payload in ('{"wrong": 1}', '{"text": ""}', "42"):
        _cli(
            stack, "signal", "--workflow-id", run_id, "--name", "provide_input", "--input", payload
        )
    assert (await wait_for(http, run_id, "waiting_for_input"))["question"]

    _cli(
        stack,
        "signal",
        "--workflow-id",
        run_id,
        "--name",
        "provide_input",
        "--input",
        json.dumps({"text": "A long weekend"}),
    )
    state = await wait_for(http, run_id, "completed")
    assert "A long weekend" in state["answer"]
    assert state["errors"] == []

    listed = _cli(stack, "list", "--query", f'WorkflowId="{run_id}" AND RunStatus="completed"')
    assert run_id in listed.stdout


async def test_the_list_holds_this_deployments_runs_only(stack: Stack) -> None:
    # A run of ours on another task queue (another deployment sharing the namespace, or one
    # whose workers are gone): no worker of this deployment would answer for it.
    import uuid

    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from config import Settings
    from shared import RUN_KIND, RUN_STATUS
    from temporal_client import connect
    from workflows.state import AgentInput

    client = await connect(Settings(temporal_address=stack.temporal_address))
    elsewhere = await client.start_workflow(
        "AgentWorkflow",
        AgentInput(query="hello"),
        id=f"run-{uuid.uuid4().hex}",
        task_queue=f"elsewhere-{uuid.uuid4().hex}",
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(RUN_STATUS, "pending"), SearchAttributePair(RUN_KIND, "agent")]
        ),
    )
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        mine = (await http.post("/api/v1/runs", json={"query": "hi"})).json()["run_id"]

        async def listed() -> set[str]:
            page = (await http.get("/api/v1/runs?page_size=100")).json()
            return {r["run_id"] for r in page["runs"]}

        ids = await eventually(listed, lambda ids: mine in ids, what="our run listed")
    assert elsewhere.id not in ids
    await elsewhere.terminate("test over")
