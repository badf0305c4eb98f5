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
