"""The graph engine through the gateway: YAML definitions, input schemas, questions by node id
(and forwarded to an agent node's child), breakpoints and steps."""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from tests.e2e.test_http_api import assert_error, wait_for
from tests.helpers import eventually

TWO_QUESTIONS = {
    "name": "two_questions",
    "entry": "start",
    "nodes": [
        {"id": "start", "type": "transform", "config": {"set": {"x": "1"}}},
        {"id": "budget", "type": "human_input", "config": {"question": "Budget?"}},
        {"id": "dates", "type": "human_input", "config": {"question": "Dates?"}},
        {"id": "plan", "type": "transform", "config": {"set": {"plan": "budget.value.text"}}},
    ],
    "edges": [
        {"source": "start", "target": "budget"},
        {"source": "start", "target": "dates"},
        {"source": "budget", "target": "plan"},
        {"source": "dates", "target": "plan"},
    ],
}
YAML = {"content-type": "application/yaml"}


async def _start(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["run_id"])


async def _state(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_graphs_are_validated_and_run_from_yaml(http: httpx.AsyncClient) -> None:
    text = yaml.safe_dump(TWO_QUESTIONS)
    response = await http.post("/api/v1/graphs/validate", content=text, headers=YAML)
    assert response.status_code == 200, response.text
    body = yaml.safe_dump({"graph": TWO_QUESTIONS | {"name": "from_yaml"}, "input": {}})
    response = await http.post("/api/v1/runs", content=body, headers=YAML)
    assert response.status_code == 201, response.text
    # Not YAML, or YAML with aliases (a billion laughs in a few lines): 422, nothing starts.
    for bad in ("a: [b, c", "a: &x [1, 2]\nb: [*x, *x, *x]\n", "[" * 100 + "]" * 100):
        response = await http.post("/api/v1/graphs/validate", content=bad, headers=YAML)
        error = assert_error(response, 422, "invalid_input")
        assert error["details"][0]["path"] == "body"


async def test_one_answer_lists_shape_and_graph_problems_together(
    http: httpx.AsyncClient,
) -> None:
    spec = {
        "name": "broken",
        "entry": "a",
        "nodes": [
            {"id": "a", "type": "transform", "config": {"set": {"x": "1"}}},
            {"id": "b", "type": "llm", "config": {}},  # shape: no prompt
            {"id": "c", "type": "transform", "config": {"set": {"x": "1"}}},  # unreachable
        ],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
    }
    response = await http.post("/api/v1/graphs/validate", json=spec)
    details = {
        d["path"]: d["message"] for d in assert_error(response, 422, "invalid_graph")["details"]
    }
    assert "needs config.prompt" in details["nodes[1].config.prompt"]
    assert "unreachable" in details["nodes[2]"]
    assert "cycle" in details["max_steps"]


async def test_input_schema_is_checked_before_the_run_starts(http: httpx.AsyncClient) -> None:
    listed = {g["name"]: g for g in (await http.get("/api/v1/graphs")).json()}
    assert listed["triage"]["input_schema"]["required"] == ["ticket"]
    response = await http.post(
        "/api/v1/runs", json={"graph": "triage", "input": {"ticket": 5, "extra": True}}
    )
    error = assert_error(response, 422, "invalid_input")
    assert error["details"][0]["path"] == "body.input.ticket"
    response = await http.post("/api/v1/runs", json={"graph": "triage", "input": {}})
    error = assert_error(response, 422, "invalid_input")
    assert "ticket" in error["details"][0]["message"]
    inline = TWO_QUESTIONS | {"name": "bad_schema", "input_schema": {"type": "nonsense"}}
    response = await http.post("/api/v1/graphs/validate", json=inline)
    details = assert_error(response, 422, "invalid_graph")["details"]
    assert details[0]["path"] == "input_schema"


async def test_questions_are_answered_by_node_id(http: httpx.AsyncClient) -> None:
    run_id = await _start(http, {"graph": TWO_QUESTIONS, "input": {}})
    state = await eventually(
        lambda: _state(http, run_id), lambda s: len(s["questions"]) == 2, what="two questions"
    )
    assert state["status"] == "waiting_for_input"
    assert [q["node_id"] for q in state["questions"]] == ["budget", "dates"]
    response = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "2000"})
    error = assert_error(response, 422, "invalid_input")
    assert error["details"][0]["path"] == "body.node_id"
    response = await http.post(
        f"/api/v1/runs/{run_id}/input", json={"text": "2000", "node_id": "plan"}
    )
    assert_error(response, 409, "invalid_state")
    for node_id, text in (("dates", "May"), ("budget", "2000")):
        response = await http.post(
            f"/api/v1/runs/{run_id}/input", json={"text": text, "node_id": node_id}
        )
        assert response.status_code == 200, response.text
    done = await wait_for(http, run_id, "completed")
    assert done["variables"]["vars"]["plan"] == "2000"


async def test_a_question_from_an_agent_node_is_answered_through_the_graph_run(
    http: httpx.AsyncClient,
) -> None:
    spec = {
        "name": "trip",
        "entry": "trip",
        "nodes": [{"id": "trip", "type": "agent", "config": {"query": "Plan my trip to Lisbon"}}],
    }
    run_id = await _start(http, {"graph": spec, "input": {}})
    state = await eventually(
        lambda: _state(http, run_id), lambda s: bool(s["questions"]), what="the child's question"
    )
    [question] = state["questions"]
    child_id = state["nodes"][0]["child_run_id"]
    assert question["node_id"] == "trip" and question["run_id"] == child_id
    response = await http.post(
        f"/api/v1/runs/{run_id}/input", json={"text": "Museums in May", "node_id": "trip"}
    )
    assert response.status_code == 200, response.text
    done = await wait_for(http, run_id, "completed")
    assert "May" in done["outputs"]["trip"]["value"]["answer"]
    child = await _state(http, child_id)
    assert child["status"] == "completed" and child["kind"] == "agent"


async def test_breakpoints_and_steps_over_http(http: httpx.AsyncClient) -> None:
    spec = {
        "name": "steps",
        "entry": "a",
        "nodes": [
            {"id": n, "type": "transform", "config": {"set": {n: "1"}}} for n in ("a", "b", "c")
        ],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
    }
    response = await http.post(
        "/api/v1/runs", json={"graph": spec, "input": {}, "breakpoints": ["b", "zz"]}
    )
    assert assert_error(response, 422, "invalid_input")["details"][0]["path"] == (
        "body.breakpoints[1]"
    )
    run_id = await _start(http, {"graph": spec, "input": {}, "breakpoints": "*"})
    held = await wait_for(http, run_id, "paused")
    assert [n["status"] for n in held["nodes"]] == ["created"] * 3
    for expected in ("a", "b"):
        response = await http.post(f"/api/v1/runs/{run_id}/step")
        assert response.status_code == 202, response.text
        await eventually(
            lambda: _state(http, run_id),
            lambda s, n=expected: s["variables"].get(n) is not None and s["status"] == "paused",
            what=f"{expected} ran, then paused",
        )
    response = await http.post(f"/api/v1/runs/{run_id}/resume")
    assert response.status_code == 202, response.text
    await wait_for(http, run_id, "completed")
    response = await http.post(f"/api/v1/runs/{run_id}/step")
    assert_error(response, 409, "invalid_state")
