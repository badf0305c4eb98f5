"""Listing, idempotent starts, body limits, tenants and API keys, Temporal down -> 503."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.processes import stop
from tests.conftest import DevServer
from tests.e2e.conftest import Gateway, Stack, start_gateway
from tests.e2e.test_http_api import assert_error, start_run, wait_for
from tests.helpers import eventually


async def _list(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/api/v1/runs", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_list_filters_and_paginates(http: httpx.AsyncClient):
    waiting = await start_run(http, "Plan my trip to Lisbon")
    done = await start_run(http, "hi")
    await wait_for(http, waiting, "waiting_for_input")
    await wait_for(http, done, "completed")

    listed = await eventually(
        lambda: _list(http, status="waiting_for_input", page_size=100),
        lambda page: waiting in [r["run_id"] for r in page["runs"]],
        what="the waiting run listed",
    )
    assert all(r["status"] == "waiting_for_input" for r in listed["runs"])
    assert done not in [r["run_id"] for r in listed["runs"]]
    await eventually(
        lambda: _list(http, status="completed", stage="done", kind="agent", page_size=100),
        lambda page: done in [r["run_id"] for r in page["runs"]],
        what="the completed run listed",
    )

    first = await _list(http, page_size=1)
    assert len(first["runs"]) == 1 and first["next_page_token"]
    second = await _list(http, page_size=1, page_token=first["next_page_token"])
    assert second["runs"][0]["run_id"] != first["runs"][0]["run_id"]
    page = (await _list(http, page_size=50))["runs"]
    created = [r["created_at"] for r in page]
    assert created == sorted(created, reverse=True)  # newest first within a page

    assert_error(await http.get("/api/v1/runs", params={"status": "bogus"}), 422, "invalid_request")
    for token in ("!!", "Zm9vYmFy"):  # not base64; base64 but not Temporal's
        response = await http.get("/api/v1/runs", params={"page_token": token})
        assert_error(response, 422, "invalid_input")
    assert_error(await http.get("/api/v1/runs", params={"page_size": 0}), 422, "invalid_request")


async def test_idempotency_key_returns_the_same_run(http: httpx.AsyncClient):
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = await http.post("/api/v1/runs", json={"query": "What is 2 + 2?"}, headers=key)
    again = await http.post("/api/v1/runs", json={"query": "What is 2 + 2?"}, headers=key)
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["run_id"] == first.json()["run_id"]
    await wait_for(http, first.json()["run_id"], "completed")
    later = await http.post("/api/v1/runs", json={"query": "What is 2 + 2?"}, headers=key)
    assert later.status_code == 200 and later.json() == {
        "run_id": first.json()["run_id"],
        "status": "completed",
    }
    other_body = await http.post("/api/v1/runs", json={"query": "What is 3 + 3?"}, headers=key)
    assert_error(other_body, 422, "idempotency_key_reused")


async def test_bodies_over_the_limit_get_413(http: httpx.AsyncClient):
    big = {"query": "x" * (65 * 1024)}
    error = assert_error(await http.post("/api/v1/runs", json=big), 413, "payload_too_large")
    assert error["details"]["limit_bytes"] == 64 * 1024

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"query": "'
        for _ in range(70):
            yield b"y" * 1024
        yield b'"}'

    streamed = await http.post(
        "/api/v1/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413, "payload_too_large")


@pytest.fixture(scope="module")
def tenant_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {**stack.env, "DURABLE_AGENT_API_KEYS": "acme-key:acme,globex-key:globex"}
    gateway = start_gateway(env, tmp_path_factory.mktemp("tenants") / "gateway.log")
    yield gateway
    stop(gateway.proc)


def _as(gateway: Gateway, key: str | None, header: str = "Authorization") -> httpx.AsyncClient:
    headers = {}
    if key is not None:
        headers = {header: f"Bearer {key}" if header == "Authorization" else key}
    return httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=30)


async def test_api_keys_are_required_when_configured(tenant_gateway: Gateway):
    async with _as(tenant_gateway, None) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        response = await anonymous.post("/api/v1/runs", json={"query": "hi"})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(await anonymous.get("/api/v1/runs"), 401, "unauthorized")
    async with _as(tenant_gateway, "wrong-key") as wrong:
        assert_error(await wrong.get("/api/v1/runs"), 401, "unauthorized")
    async with _as(tenant_gateway, "acme-key", header="X-API-Key") as by_header:
        assert (await by_header.get("/api/v1/runs")).status_code == 200


async def test_a_tenant_sees_and_controls_only_its_own_runs(tenant_gateway: Gateway):
    async with _as(tenant_gateway, "acme-key") as acme, _as(tenant_gateway, "globex-key") as globex:
        run_id = await start_run(acme, "Plan my trip to Lisbon")
        await wait_for(acme, run_id, "waiting_for_input")

        for response in (
            await globex.get(f"/api/v1/runs/{run_id}"),
            await globex.get(f"/api/v1/runs/{run_id}/events"),
            await globex.post(f"/api/v1/runs/{run_id}/input", json={"text": "hijack"}),
            await globex.post(f"/api/v1/runs/{run_id}/pause"),
            await globex.post(f"/api/v1/runs/{run_id}/resume"),
            await globex.post(f"/api/v1/runs/{run_id}/cancel"),
        ):
            error = assert_error(response, 404, "run_not_found")
            assert error["message"] == f"no run with id '{run_id}'"  # same as an unknown id

        await eventually(
            lambda: _list(acme, page_size=100),
            lambda page: run_id in [r["run_id"] for r in page["runs"]],
            what="acme lists its run",
        )
        assert run_id not in [r["run_id"] for r in (await _list(globex, page_size=100))["runs"]]

        # The same idempotency key in two tenants names two different runs.
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        a = await acme.post("/api/v1/runs", json={"query": "hi"}, headers=key)
        g = await globex.post("/api/v1/runs", json={"query": "hi"}, headers=key)
        assert a.status_code == g.status_code == 201
        assert a.json()["run_id"] != g.json()["run_id"]

        response = await acme.post(f"/api/v1/runs/{run_id}/input", json={"text": "Two days"})
        assert response.status_code == 200
        assert "Two days" in (await wait_for(acme, run_id, "completed"))["answer"]


async def test_temporal_down_gives_503_and_recovers(stack: Stack, tmp_path):
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    server.start()
    env = {
        **stack.env,
        "DURABLE_AGENT_TEMPORAL_ADDRESS": server.address,
        "DURABLE_AGENT_QUERY_TIMEOUT_S": "2",
    }
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            server.stop()
            assert (await http.get("/healthz")).status_code == 200
            assert_error(await http.get("/readyz"), 503, "temporal_unavailable")
            assert_error(
                await http.post("/api/v1/runs", json={"query": "hi"}), 503, "temporal_unavailable"
            )
            assert_error(await http.get("/api/v1/runs/run-x"), 503, "temporal_unavailable")
            assert_error(await http.get("/api/v1/runs"), 503, "temporal_unavailable")
            server.start()  # same port, same db file
            await eventually(
                lambda: http.get("/readyz"), lambda r: r.status_code == 200, what="ready again"
            )
    finally:
        stop(gateway.proc)
        server.stop()
