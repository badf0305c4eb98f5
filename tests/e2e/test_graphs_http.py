"""Graph runs over HTTP: the catalog, validation before anything runs, runs and their events."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Stack
from tests.e2e.sse import read_events
from tests.e2e.test_http_api import assert_error, wait_for


async def test_catalog(http: httpx.AsyncClient):
    listed = (await http.get("/api/v1/graphs")).json()
    assert {g["name"] for g in listed} >= {"triage", "draft_review", "approval"}
    triage = await http.get("/api/v1/graphs/triage")
    assert triage.status_code == 200 and triage.json()["entry"] == "classify"
    missing = assert_error(await http.get("/api/v1/graphs/nope"), 404, "graph_not_found")
    assert "triage" in missing["message"]


async def test_validate_reports_every_problem(http: httpx.AsyncClient):
    good = (await http.get("/api/v1/graphs/draft_review")).json()
    response = await http.post("/api/v1/graphs/validate", json=good)
    assert response.status_code == 200 and response.json() == {"valid": True, "problems": []}

    bad = {
        "name": "bad",
        "entry": "start",
        "nodes": [
            {"id": "start", "type": "condition", "config": {"expression": "input.x >"}},
            {"id": "lost", "type": "teleport"},
        ],
        "edges": [{"source": "start", "target": "ghost"}],
    }
    error = assert_error(await http.post("/api/v1/graphs/validate", json=bad), 422, "invalid_graph")
    paths = {d["path"] for d in error["details"]}
    assert paths == {"nodes[0].config.expression", "nodes[1].type", "edges[0].target"}
    started = await http.post("/api/v1/runs", json={"graph": bad, "input": {}})
    assert assert_error(started, 422, "invalid_graph")["details"] == error["details"]


async def test_run_a_catalog_graph_and_stream_it(http: httpx.AsyncClient, stack: Stack):
    response = await http.post(
        "/api/v1/runs", json={"graph": "triage", "input": {"ticket": "My app crashes"}}
    )
    assert response.status_code == 201, response.text
    run_id = response.json()["run_id"]
    events = await read_events(stack.base_url, run_id)
    assert events[-1].type == "result" and events[-1].data["status"] == "completed"
    assert "support_reply" in events[-1].data["outputs"]
    node_events = {(e.data["node_id"], e.data["status"]) for e in events if e.type == "node"}
    assert ("support_reply", "completed") in node_events
    assert ("billing_reply", "skipped") in node_events

    state = await wait_for(http, run_id, "completed")
    assert state["kind"] == "graph" and state["graph"] == "triage"
    assert state["variables"]["classify"]["value"] == "support"
    assert {n["id"]: n["status"] for n in state["nodes"]}["billing_reply"] == "skipped"
    assert state["stage"] is None and state["query"] is None

    listed = await http.get("/api/v1/runs", params={"kind": "graph", "page_size": 100})
    assert run_id in [r["run_id"] for r in listed.json()["runs"]]


async def test_human_input_step_over_http(http: httpx.AsyncClient):
    response = await http.post(
        "/api/v1/runs", json={"graph": "approval", "input": {"announcement": "v2 is out"}}
    )
    run_id = response.json()["run_id"]
    waiting = await wait_for(http, run_id, "waiting_for_input")
    assert waiting["waiting_node"] == "approval" and "v2 is out" in waiting["question"]
    assert (
        await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "yes"})
    ).status_code == 200
    done = await wait_for(http, run_id, "completed")
    assert list(done["outputs"]) == ["publish"]


async def test_bad_graph_requests(http: httpx.AsyncClient):
    unknown = await http.post("/api/v1/runs", json={"graph": "nope", "input": {}})
    assert "no graph named 'nope'" in assert_error(unknown, 422, "invalid_input")["message"]
    both = await http.post("/api/v1/runs", json={"query": "hi", "graph": "triage"})
    assert "either `query`" in assert_error(both, 422, "invalid_request")["message"]
    neither = await http.post("/api/v1/runs", json={"input": {}})
    assert_error(neither, 422, "invalid_request")
    wrong_input = await http.post("/api/v1/runs", json={"graph": "triage", "input": [1]})
    assert_error(wrong_input, 422, "invalid_request")
