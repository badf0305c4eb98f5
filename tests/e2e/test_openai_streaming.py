"""Token streaming end to end: aimock (tests/aimock/mock.py) streams the final answer, the worker's
activity publishes the tokens to the run's event stream, and an SSE client of the gateway gets
them in order; the complete answer is what the run records."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from config import PROJECT_ROOT
from devstack.processes import start, stop
from tests.aimock.mock import AIMOCK_KEY, AiMock
from tests.conftest import DevServer
from tests.e2e.conftest import Gateway, start_gateway
from tests.e2e.sse import read_events

ANSWER = "".join(f"word{i} " for i in range(30))


@pytest.fixture(scope="module")
def openai_stack(
    dev_server: DevServer, aimock_server: AiMock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    logs = tmp_path_factory.mktemp("openai-stack")
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": f"openai-{uuid.uuid4().hex}",
        "DURABLE_AGENT_LLM": "openai",
        "DURABLE_AGENT_OPENAI_BASE_URL": f"{aimock_server.base_url}/v1",
        "DURABLE_AGENT_OPENAI_API_KEY": AIMOCK_KEY,
        "DURABLE_AGENT_MODEL": "gpt-4o-mini",
        "DURABLE_AGENT_NOTES_FILE": str(logs / "notes.txt"),
    }
    worker = start(
        [sys.executable, "worker.py"], env=env, log=logs / "worker.log", cwd=PROJECT_ROOT
    )
    gateway = start_gateway(env, logs / "gateway.log")
    yield gateway
    stop(gateway.proc)
    stop(worker)
    for log in logs.glob("*.log"):  # the key must not be logged by any of our processes
        assert AIMOCK_KEY not in log.read_text()


async def test_tokens_reach_the_sse_client_in_order(
    openai_stack: Gateway, aimock: AiMock, capsys: Any
):
    # aimock cuts the text into chunks of 4 characters (its --chunk-size), one SSE chunk each.
    aimock.script(step=[{"content": ANSWER}])
    async with httpx.AsyncClient(base_url=openai_stack.base_url, timeout=30) as http:
        response = await http.post("/api/v1/runs", json={"query": "Tell me a story"})
        run_id = response.json()["run_id"]
    events = await read_events(openai_stack.base_url, run_id)
    tokens = [e for e in events if e.type == "token"]
    assert [t.data["text"] for t in tokens] == [ANSWER[i : i + 4] for i in range(0, len(ANSWER), 4)]
    assert all(t.data["node"] == "step-1" for t in tokens)
    result = events[-1]
    assert result.type == "result" and result.data["answer"] == ANSWER
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    # Tokens come before the step's completion, i.e. while the answer is being written.
    step_done = next(
        i
        for i, e in enumerate(events)
        if e.type == "node" and e.data["name"] == "step-1" and e.data["status"] == "completed"
    )
    assert max(i for i, e in enumerate(events) if e.type == "token") < step_done
