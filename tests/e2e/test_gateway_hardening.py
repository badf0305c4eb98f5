"""The gateway never answers 500 and is no tenant oracle: ownership before any query, Temporal's
errors mapped, runs that cannot answer read as `stuck` or `failed`, HMAC-derived ids and signed
page tokens, idempotent input, strict Last-Event-ID."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.worker import Worker

from config import Settings
from devstack.processes import stop, temporal_binary
from shared import RUN_KIND, RUN_STATUS, TENANT
from temporal_client import connect
from tests.e2e.broken_workflow import FAILURE, BrokenAgentWorkflow
from tests.e2e.conftest import Gateway, Stack, start_gateway
from tests.e2e.test_http_api import assert_error, start_run, wait_for
from tests.helpers import eventually
from worker import build_worker
from workflows.agent import AgentWorkflow
from workflows.state import AgentInput

ACME = {"Authorization": "Bearer acme-key"}
GLOBEX = {"Authorization": "Bearer globex-key"}
KEYS = "acme-key:acme,globex-key:globex"


# Runs a test leaves with no worker to finish them. Terminated after the test, so that other
# tests of the shared stack (the schema fuzzing lists and reads every run) never wait on them.
LEFT_OPEN: list[str] = []


@pytest.fixture
async def temporal(stack: Stack) -> AsyncIterator[Client]:
    client = await connect(Settings(temporal_address=stack.temporal_address))
    yield client
    while LEFT_OPEN:
        try:
            await client.get_workflow_handle(LEFT_OPEN.pop()).terminate("test cleanup")
        except RPCError:
            pass  # already closed


def _attributes(tenant: str | None = None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RUN_STATUS, "pending"),
        SearchAttributePair(RUN_KIND, "agent"),
    ]
    if tenant is not None:
        pairs.append(SearchAttributePair(TENANT, tenant))
    return TypedSearchAttributes(pairs)


async def _idle_run(temporal: Client, tenant: str | None = None) -> str:
    """An agent run on a task queue no worker polls: it exists, but nothing can answer for it."""
    run_id = f"run-{uuid.uuid4().hex}"
    await temporal.start_workflow(
        AgentWorkflow.run,
        AgentInput(query="Plan my trip to Lisbon", tenant=tenant),
        id=run_id,
        task_queue=f"nobody-{uuid.uuid4().hex}",
        search_attributes=_attributes(tenant),
    )
    LEFT_OPEN.append(run_id)
    return run_id


def _gateway(stack: Stack, tmp_path: Path, **env: str) -> Iterator[Gateway]:
    gateway = start_gateway({**stack.env, **env}, tmp_path / f"gateway-{uuid.uuid4().hex}.log")
    try:
        yield gateway
    finally:
        stop(gateway.proc)


@pytest.fixture
def slow_query_gateway(stack: Stack, tmp_path: Path) -> Iterator[Gateway]:
    """API keys on, and a query timeout far longer than any request of these tests may take."""
    yield from _gateway(
        stack, tmp_path, DURABLE_AGENT_API_KEYS=KEYS, DURABLE_AGENT_QUERY_TIMEOUT_S="600"
    )


async def test_another_tenants_run_is_refused_without_asking_its_workflow(
    slow_query_gateway: Gateway, temporal: Client
) -> None:
    # acme's run has no worker: a query for it would wait the full 600 s timeout. globex must get
    # its 404 from the ownership check alone, long before the client's own 60 s timeout.
    run_id = await _idle_run(temporal, tenant="acme")
    unknown = f"run-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(
        base_url=slow_query_gateway.base_url, headers=GLOBEX, timeout=60
    ) as globex:
        for method, path, body in (
            ("GET", "", None),
            ("GET", "/events", None),
            ("POST", "/input", {"text": "hijack"}),
            ("POST", "/pause", None),
            ("POST", "/resume", None),
            ("POST", "/cancel", None),
        ):
            foreign = await globex.request(method, f"/api/v1/runs/{run_id}{path}", json=body)
            missing = await globex.request(method, f"/api/v1/runs/{unknown}{path}", json=body)
            error = assert_error(foreign, 404, "run_not_found")
            other = assert_error(missing, 404, "run_not_found")
            assert error["message"] == other["message"].replace(unknown, run_id)
            assert foreign.headers.keys() == missing.headers.keys()


async def test_a_stuck_run_reads_as_stuck(http: httpx.AsyncClient, temporal: Client) -> None:
    # A worker whose AgentWorkflow raises a plain exception: the task fails on every attempt.
    task_queue = f"broken-{uuid.uuid4().hex}"
    run_id = f"run-{uuid.uuid4().hex}"
    LEFT_OPEN.append(run_id)
    async with Worker(temporal, task_queue=task_queue, workflows=[BrokenAgentWorkflow]):
        await temporal.start_workflow(
            "AgentWorkflow",
            {"query": "hi"},
            id=run_id,
            task_queue=task_queue,
            search_attributes=_attributes(),
        )
        await _read_stuck(http, run_id)


async def _read_stuck(http: httpx.AsyncClient, run_id: str) -> None:
    async def read() -> httpx.Response:
        return await http.get(f"/api/v1/runs/{run_id}")

    # Pending until its task has failed a few times in a row (one failure may be transient).
    response = await eventually(
        read,
        lambda r: r.status_code == 200 and r.json()["status"] == "stuck",
        deadline_s=60,
        what="the run read as stuck",
    )
    state = response.json()
    assert state["status"] == "stuck" and state["run_id"] == run_id
    assert FAILURE in state["errors"][0]

    events = await http.get(f"/api/v1/runs/{run_id}/events")
    assert events.status_code == 200
    data = [line for line in events.text.splitlines() if line.startswith("data:")]
    assert json.loads(data[-1][5:])["data"]["status"] == "stuck"
    for action in ("pause", "resume", "cancel"):
        error = assert_error(
            await http.post(f"/api/v1/runs/{run_id}/{action}"), 409, "invalid_state"
        )
        assert "stuck" in error["message"]
    stuck_input = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "hello"})
    assert "stuck" in assert_error(stuck_input, 409, "invalid_state")["message"]
    assert (await http.get("/api/v1/runs", params={"page_size": 100})).status_code == 200


def _terminate(stack: Stack, run_id: str, reason: str) -> None:
    subprocess.run(
        [
            temporal_binary(),
            "workflow",
            "terminate",
            "--workflow-id",
            run_id,
            "--reason",
            reason,
            "--address",
            stack.temporal_address,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


async def test_terminated_runs_read_as_failed_with_the_reason(
    http: httpx.AsyncClient, stack: Stack, temporal: Client
) -> None:
    waiting = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, waiting, "waiting_for_input")
    never_ran = await _idle_run(temporal)  # terminated before its first workflow task
    for run_id in (waiting, never_ran):
        _terminate(stack, run_id, "operator cleanup")
        state = await wait_for(http, run_id, "failed")
        assert any("operator cleanup" in error for error in state["errors"]), state
        for action in ("pause", "resume", "cancel"):
            response = await http.post(f"/api/v1/runs/{run_id}/{action}")
            assert_error(response, 409, "invalid_state")
        response = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "late"})
        assert_error(response, 409, "invalid_state")
        events = await http.get(f"/api/v1/runs/{run_id}/events")
        assert events.status_code == 200, events.text

    async def listed(status: str) -> list[str]:
        response = await http.get("/api/v1/runs", params={"status": status, "page_size": 100})
        assert response.status_code == 200, response.text
        return [run["run_id"] for run in response.json()["runs"]]

    # Listed by how it ended, not by the status it last recorded.
    await eventually(lambda: listed("failed"), lambda ids: waiting in ids, what="listed failed")
    await eventually(
        lambda: listed("waiting_for_input"), lambda ids: waiting not in ids, what="not waiting"
    )


@pytest.fixture
def impatient_gateway(stack: Stack, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(stack, tmp_path, DURABLE_AGENT_QUERY_TIMEOUT_S="1")


async def test_timeouts_are_503_with_retry_after(
    impatient_gateway: Gateway, temporal: Client, stack: Stack
) -> None:
    # A run that started on a worker which is gone: queries and updates for it time out.
    settings = Settings(
        temporal_address=stack.temporal_address, task_queue=f"gone-{uuid.uuid4().hex}"
    )
    run_id = f"run-{uuid.uuid4().hex}"
    LEFT_OPEN.append(run_id)
    async with httpx.AsyncClient(base_url=impatient_gateway.base_url, timeout=60) as http:
        async with build_worker(temporal, settings):
            await temporal.start_workflow(
                AgentWorkflow.run,
                AgentInput(query="Plan my trip to Lisbon"),
                id=run_id,
                task_queue=settings.task_queue,
                search_attributes=_attributes(),
            )
            await wait_for(http, run_id, "waiting_for_input")
        for response in (
            await http.get(f"/api/v1/runs/{run_id}"),
            await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "hello"}),
            await http.post(
                f"/api/v1/runs/{run_id}/input",
                json={"text": "hello"},
                headers={"Idempotency-Key": "retry-me"},
            ),
            await http.post(f"/api/v1/runs/{run_id}/pause"),
        ):
            assert_error(response, 503, "temporal_unavailable")
            assert int(response.headers["retry-after"]) > 0


async def test_a_run_no_worker_has_picked_up_reads_as_pending_at_once(
    impatient_gateway: Gateway, temporal: Client
) -> None:
    # Its first task waits on a queue nobody polls: no query is made (it would only time out).
    run_id = await _idle_run(temporal)
    async with httpx.AsyncClient(base_url=impatient_gateway.base_url, timeout=60) as http:
        state = await http.get(f"/api/v1/runs/{run_id}")
        assert state.status_code == 200 and state.json()["status"] == "pending"
        late = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": "hello"})
        assert "pending" in assert_error(late, 409, "invalid_state")["message"]
        assert (await http.post(f"/api/v1/runs/{run_id}/pause")).status_code == 202


async def test_input_with_an_idempotency_key_applies_once(http: httpx.AsyncClient) -> None:
    run_id = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, run_id, "waiting_for_input")
    key = {"Idempotency-Key": f"answer-{uuid.uuid4()}"}
    path = f"/api/v1/runs/{run_id}/input"
    first = await http.post(path, json={"text": "Five days in June"}, headers=key)
    assert first.status_code == 200, first.text
    again = await http.post(path, json={"text": "Five days in June"}, headers=key)
    assert again.status_code == 200, again.text
    assert (
        again.json()
        == first.json()
        == {
            "run_id": run_id,
            "status": "running",
            "pending": False,
        }
    )
    assert_error(await http.post(path, json={"text": "Five days in June"}), 409, "invalid_state")
    state = await wait_for(http, run_id, "completed")
    assert "Five days in June" in state["answer"]
    later = await http.post(path, json={"text": "Five days in June"}, headers=key)
    assert later.status_code == 200 and later.json() == first.json()


async def test_input_reaches_the_run_as_a_signal_never_an_update(
    http: httpx.AsyncClient, temporal: Client
) -> None:
    # An accepted Update can leave a worker unable to replay the run (docs/durability.md); a
    # signal is in the history, which any worker replays.
    run_id = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, run_id, "waiting_for_input")
    key = {"Idempotency-Key": f"answer-{uuid.uuid4()}"}
    for _ in range(2):
        answered = await http.post(
            f"/api/v1/runs/{run_id}/input", json={"text": "A week"}, headers=key
        )
        assert answered.status_code == 200, answered.text
    await wait_for(http, run_id, "completed")
    history = await temporal.get_workflow_handle(run_id).fetch_history()
    kinds = [EventType.Name(e.event_type) for e in history.events]
    assert kinds.count("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED") == 1
    assert not [k for k in kinds if "UPDATE" in k and "SEARCH_ATTRIBUTES" not in k], kinds


async def test_last_event_id_must_be_ascii_digits(http: httpx.AsyncClient) -> None:
    run_id = await start_run(http, "hi")
    # Header bytes arrive as Latin-1: b"\xb2" is "²", which str.isdigit accepts and int refuses.
    for bad in (b"\xb2", b"1\xb9", b"1e3", b"-1", b"9" * 19):
        response = await http.get(f"/api/v1/runs/{run_id}/events", headers={"Last-Event-ID": bad})
        error = assert_error(response, 422, "invalid_input")
        assert error["details"] == [{"path": "header.Last-Event-ID"}]


async def test_page_tokens_are_signed(http: httpx.AsyncClient) -> None:
    for _ in range(2):
        await start_run(http, "hi")
    first = (await http.get("/api/v1/runs", params={"page_size": 1})).json()
    token = first["next_page_token"]
    assert (await http.get("/api/v1/runs", params={"page_size": 1, "page_token": token})).is_success
    # A well-formed visibility token, with a checksum anyone can compute: not ours, refused.
    raw = json.dumps(
        {"CloseTime": "9999-12-31T23:59:59Z", "StartTime": "2099-01-01T00:00:00Z", "RunID": "x"},
        separators=(",", ":"),
    ).encode()
    blob = base64.urlsafe_b64decode(token)
    tampered = bytearray(blob)
    tampered[-3] ^= 1
    for forged in (
        hashlib.sha256(raw).digest()[:4] + raw,
        hashlib.sha256(raw).digest()[:16] + raw,
        bytes(tampered),
    ):
        response = await http.get(
            "/api/v1/runs", params={"page_token": base64.urlsafe_b64encode(forged).decode()}
        )
        error = assert_error(response, 422, "invalid_input")
        assert error["details"] == [{"path": "query.page_token"}]


async def test_the_secret_is_made_once_and_shared(stack: Stack, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "gateway.log"
    env = {**stack.env, "DURABLE_AGENT_DATA_DIR": str(data_dir), "DURABLE_AGENT_API_KEYS": KEYS}
    key = {**ACME, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {"query": "hi"}

    first = start_gateway(env, log)
    try:
        secret_file = data_dir / "gateway.secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
            created = await http.post("/api/v1/runs", json=body, headers=key)
            assert created.status_code == 201, created.text
            run_id = created.json()["run_id"]
            token = (await http.get("/api/v1/runs", params={"page_size": 1}, headers=ACME)).json()
    finally:
        stop(first.proc)
    # Not computable without the secret (the old derivation was a plain hash).
    plain = hashlib.sha256(f"acme\0{key['Idempotency-Key']}".encode()).hexdigest()[:32]
    assert run_id != f"run-{plain}"

    second = start_gateway(env, log)  # a restart: same file, same key
    try:
        async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as http:
            again = await http.post("/api/v1/runs", json=body, headers=key)
            assert again.status_code == 200 and again.json()["run_id"] == run_id
            if token["next_page_token"]:
                page = await http.get(
                    "/api/v1/runs",
                    params={"page_size": 1, "page_token": token["next_page_token"]},
                    headers=ACME,
                )
                assert page.status_code == 200, page.text
    finally:
        stop(second.proc)

    secret = uuid.uuid4().hex
    other = start_gateway({**env, "DURABLE_AGENT_SECRET_KEY": secret}, log)
    try:
        async with httpx.AsyncClient(base_url=other.base_url, timeout=30) as http:
            elsewhere = await http.post("/api/v1/runs", json=body, headers=key)
            assert elsewhere.status_code == 201 and elsewhere.json()["run_id"] != run_id
    finally:
        stop(other.proc)
    assert secret not in log.read_text()
    assert secret_file.read_text().strip() not in log.read_text()


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


async def test_bad_text_and_json_are_422_before_anything_starts(http: httpx.AsyncClient) -> None:
    lone = "\ud800"
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/runs", {"query": f"hi {lone}"}, "body.query"),
        ("/api/v1/runs", {"query": "\x00\x00 \n"}, "body.query"),
        ("/api/v1/runs", {"graph": "triage", "input": {"ticket": lone}}, "body.input.ticket"),
        ("/api/v1/runs", {"graph": "triage", "input": {lone: "x"}}, "body.input"),
        ("/api/v1/runs", {"graph": "triage", "input": _nested(255)}, "body.input"),
        ("/api/v1/runs", {"graph": "triage", "input": {"t": "x" * 70_000}}, "body.input"),
    ]
    for path, body, where in cases:
        # Sent as the JSON text a client would write: \ud800 escaped, which any JSON parser
        # reads back as a lone surrogate.
        response = await http.post(
            path,
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        if response.status_code == 413:  # the size case can hit the body limit first
            continue
        # invalid_request when the string type itself refuses it, invalid_input from our checks
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] in ("invalid_request", "invalid_input"), error
        assert any(d["path"].startswith(where) for d in error["details"]), (body, error)

    inline = {
        "name": "g",
        "entry": "n",
        "nodes": [{"id": "n", "type": "llm", "config": {"prompt": f"hello {lone}"}}],
        "edges": [],
    }
    for path in ("/api/v1/runs", "/api/v1/graphs/validate"):
        body = {"graph": inline, "input": {}} if path == "/api/v1/runs" else inline
        for payload in (body, {"graph": _nested(300)} if path == "/api/v1/runs" else _nested(300)):
            response = await http.post(
                path,
                content=json.dumps(payload).encode(),
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 422, (path, response.text)

    # Nesting deeper than any JSON parser's recursion limit.
    deep = b'{"graph": "triage", "input": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    response = await http.post(
        "/api/v1/runs", content=deep, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text

    run_id = await start_run(http, "Plan my trip to Lisbon")
    await wait_for(http, run_id, "waiting_for_input")
    for text in (lone, "\x00\x00", "x" * 101):
        response = await http.post(
            f"/api/v1/runs/{run_id}/input",
            content=json.dumps({"text": text}).encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["path"] == "body.text"


async def test_the_stream_of_a_run_not_yet_taken_waits_for_its_worker(
    http: httpx.AsyncClient, temporal: Client, stack: Stack
) -> None:
    settings = Settings(
        temporal_address=stack.temporal_address, task_queue=f"late-{uuid.uuid4().hex}"
    )
    run_id = f"run-{uuid.uuid4().hex}"
    await temporal.start_workflow(
        AgentWorkflow.run,
        AgentInput(query="What is 6 * 7?"),
        id=run_id,
        task_queue=settings.task_queue,
        search_attributes=_attributes(),
    )
    async with http.stream("GET", f"/api/v1/runs/{run_id}/events") as stream:
        assert stream.status_code == 200  # open before any worker took the run
        async with build_worker(temporal, settings):  # the worker comes later
            kinds = []
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kinds.append(line.split(":", 1)[1].strip())
                    if kinds[-1] == "result":
                        break
    assert kinds[0] == "status" and kinds[-1] == "result" and "tool_call" in kinds


async def test_a_completed_run_reads_without_its_worker(
    impatient_gateway: Gateway, temporal: Client, stack: Stack
) -> None:
    # Its state comes from its completion event: no query, so no worker and no replay.
    settings = Settings(
        temporal_address=stack.temporal_address, task_queue=f"done-{uuid.uuid4().hex}"
    )
    async with build_worker(temporal, settings):
        handle = await temporal.start_workflow(
            AgentWorkflow.run,
            AgentInput(query="What is 6 * 7?"),
            id=f"run-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
            search_attributes=_attributes(),
        )
        await handle.result()
    async with httpx.AsyncClient(base_url=impatient_gateway.base_url, timeout=60) as http:
        state = (await http.get(f"/api/v1/runs/{handle.id}")).json()
        events = await http.get(f"/api/v1/runs/{handle.id}/events")
        resumed = await http.get(f"/api/v1/runs/{handle.id}/events", headers={"Last-Event-ID": "3"})
    assert state["status"] == "completed" and "42" in state["answer"], state
    assert state["nodes"] and not state["errors"]
    # Its events too come from its history, whole, from the first to the result.
    ids = [int(line[3:]) for line in events.text.splitlines() if line.startswith("id:")]
    kinds = [line[6:].strip() for line in events.text.splitlines() if line.startswith("event:")]
    assert ids == list(range(len(ids))) and kinds[-1] == "result" and "tool_call" in kinds
    again = [int(line[3:]) for line in resumed.text.splitlines() if line.startswith("id:")]
    assert again == ids[4:]


async def test_a_failed_run_reads_without_its_worker(
    impatient_gateway: Gateway, temporal: Client, stack: Stack
) -> None:
    # Its state travels in its failure's details: no query, so no worker and no replay.
    settings = Settings(
        temporal_address=stack.temporal_address, task_queue=f"fail-{uuid.uuid4().hex}"
    )
    async with build_worker(temporal, settings):
        handle = await temporal.start_workflow(
            AgentWorkflow.run,
            AgentInput(query="Plan my trip to Lisbon", input_timeout_s=1),
            id=f"run-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
            search_attributes=_attributes(),
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    async with httpx.AsyncClient(base_url=impatient_gateway.base_url, timeout=60) as http:
        state = (await http.get(f"/api/v1/runs/{handle.id}")).json()
    assert state["status"] == "failed" and state["nodes"], state
    assert any("no input arrived" in error for error in state["errors"]), state


@pytest.fixture
def few_streams_gateway(stack: Stack, tmp_path: Path) -> Iterator[Gateway]:
    yield from _gateway(stack, tmp_path, DURABLE_AGENT_MAX_STREAMS_PER_TENANT="3")


async def test_event_streams_per_tenant_are_bounded(few_streams_gateway: Gateway) -> None:
    # Every open stream polls its run's worker: 300 of them starved other runs. Past the bound,
    # 429 with Retry-After; a closed stream frees its place.
    async with httpx.AsyncClient(base_url=few_streams_gateway.base_url, timeout=60) as http:
        run_id = await start_run(http, "Plan my trip to Lisbon")
        await wait_for(http, run_id, "waiting_for_input")
        url = f"/api/v1/runs/{run_id}/events"
        streams = [http.stream("GET", url) for _ in range(3)]
        opened = [await s.__aenter__() for s in streams]
        assert all(r.status_code == 200 for r in opened)
        refused = await http.get(url)
        assert_error(refused, 429, "too_many_streams")
        assert int(refused.headers["retry-after"]) > 0
        await streams[0].__aexit__(None, None, None)

        async def reopen() -> httpx.Response:
            async with http.stream("GET", url) as again:
                return again

        again = await eventually(reopen, lambda r: r.status_code == 200, what="a free place")
        assert again.status_code == 200
        for s in streams[1:]:
            await s.__aexit__(None, None, None)
