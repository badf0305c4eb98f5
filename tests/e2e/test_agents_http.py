"""Agent definitions over HTTP: the catalog, validation with paths, runs of a named or inline
agent (pinned whole, searchable by `RunAgent`)."""

from __future__ import annotations

import httpx

from tests.helpers import eventually


async def _done(http: httpx.AsyncClient, run_id: str) -> dict:  # type: ignore[type-arg]
    async def read() -> dict:  # type: ignore[type-arg]
        return (await http.get(f"/api/v1/runs/{run_id}")).json()  # type: ignore[no-any-return]

    return await eventually(read, lambda r: r["status"] in ("completed", "failed"), what=run_id)


async def test_catalog_and_validation(http: httpx.AsyncClient) -> None:
    listed = (await http.get("/api/v1/agents")).json()
    assert {"default", "support", "research", "extractor"} <= {a["name"] for a in listed}
    support = (await http.get("/api/v1/agents/support")).json()
    assert support["tools"] == ["search_docs", "append_note", "calculator"]
    missing = await http.get("/api/v1/agents/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "agent_not_found"
    bad = await http.post(
        "/api/v1/agents/validate",
        json={"name": "x", "tools": ["nope"], "models": {"plan": "m"}, "max_context_rounds": -1},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_agent"
    paths = {d["path"] for d in bad.json()["error"]["details"]}
    assert paths == {"tools[0]", "models.plan", "max_context_rounds"}
    good = await http.post("/api/v1/agents/validate", json={"name": "ok", "tools": ["calc*"]})
    assert good.status_code == 200 and good.json()["valid"] is True


async def test_runs_of_named_and_inline_agents(http: httpx.AsyncClient) -> None:
    created = await http.post("/api/v1/runs", json={"agent": "extractor", "query": "Thanks, bye"})
    assert created.status_code == 201, created.text
    run = await _done(http, created.json()["run_id"])
    assert run["status"] == "completed" and run["agent"] == "extractor"
    default = await http.post("/api/v1/runs", json={"query": "What is 17 * 23?"})
    run = await _done(http, default.json()["run_id"])
    assert run["agent"] == "default" and "391" in run["answer"]
    bad = await http.post(
        "/api/v1/runs", json={"agent": {"name": "x", "tools": ["nope"]}, "query": "hi"}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["path"] == "body.agent.tools[0]"
    unknown = await http.post("/api/v1/runs", json={"agent": "nope", "query": "hi"})
    assert unknown.status_code == 422
    inline = await http.post(
        "/api/v1/runs",
        json={
            "agent": {
                "name": "calc_only",
                "tools": ["calculator"],
                "reflection": {"enabled": False},
            },
            "query": "What is 2 * 21?",
        },
    )
    run = await _done(http, inline.json()["run_id"])
    assert run["status"] == "completed" and run["agent"] == "calc_only"
    assert "42" in run["answer"]

    async def listed() -> list:  # type: ignore[type-arg]
        page = (await http.get("/api/v1/runs?page_size=100")).json()
        return [r for r in page["runs"] if r["agent"] == "calc_only"]

    await eventually(listed, what="RunAgent on the listing")


async def test_the_runs_list_filters_by_agent(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/api/v1/runs",
        json={"agent": {"name": "only_me", "reflection": {"enabled": False}}, "query": "hi"},
    )
    run_id = created.json()["run_id"]
    await http.post("/api/v1/runs", json={"query": "hello"})  # the default agent's

    async def listed() -> list[dict]:  # type: ignore[type-arg]
        page = (await http.get("/api/v1/runs", params={"agent": "only_me"})).json()
        return page["runs"]  # type: ignore[no-any-return]

    runs = await eventually(listed, lambda runs: len(runs) > 0, what="agent=only_me")
    assert [(r["run_id"], r["agent"]) for r in runs] == [(run_id, "only_me")]
    for bad in ("", "bad name", 'a"b', "x" * 101):
        response = await http.get("/api/v1/runs", params={"agent": bad})
        assert response.status_code == 422, bad
        details = response.json()["error"]["details"]
        assert details[0]["path"] == "query.agent", details


async def test_a_graph_agent_node_runs_the_catalog_agent_it_names(
    http: httpx.AsyncClient,
) -> None:
    graph = {
        "name": "one_agent",
        "entry": "answer",
        "nodes": [
            {
                "id": "answer",
                "type": "agent",
                "config": {"agent": "triage", "query": "What is {{ input.expr }}?"},
            }
        ],
    }
    created = await http.post("/api/v1/runs", json={"graph": graph, "input": {"expr": "6 * 7"}})
    assert created.status_code == 201, created.text
    run = await _done(http, created.json()["run_id"])
    assert run["status"] == "completed", run["errors"]
    node = run["nodes"][0]
    assert node["type"] == "agent" and node["child_run_id"]
    assert run["outputs"]["answer"]["value"]["status"] == "completed"
    assert "42" in run["outputs"]["answer"]["value"]["answer"]
    # The child is a run of the catalog agent, pinned whole: its name is on the run and its
    # search attribute (the Web UI's RunAgent column, and the listing's agent filter).
    child = (await http.get(f"/api/v1/runs/{node['child_run_id']}")).json()
    assert child["kind"] == "agent" and child["agent"] == "triage"
    assert child["status"] == "completed"

    async def listed() -> list[str]:
        page = (await http.get("/api/v1/runs", params={"agent": "triage"})).json()
        return [r["run_id"] for r in page["runs"]]

    await eventually(listed, lambda ids: node["child_run_id"] in ids, what="child by RunAgent")
