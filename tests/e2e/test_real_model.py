"""The pipeline on a real model server that we did not write: llama.cpp's server (PyPI
`xllamacpp`) with SmolLM2-135M-Instruct, a real process on a free port, behind the real worker
and gateway. The model is tiny: these tests assert on shapes and the lifecycle, never on wisdom.

    make test-real-model        # just these (they are part of `make test` too)
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from config import PROJECT_ROOT
from devstack.processes import free_port, start, stop, wait_until
from tests.conftest import DevServer
from tests.e2e.conftest import start_gateway
from tests.e2e.sse import Event
from tests.helpers import eventually
from tests.real_model.llama_server import MODEL_ALIAS

pytestmark = pytest.mark.real_model

# Small answers keep a run within seconds on one CPU thread.
MAX_TOKENS = 320
# USD per million tokens, made up: cost is recorded as for a paid model.
PRICE_IN, PRICE_OUT = 0.5, 1.5

# The pipeline's four stages on every run of this agent, by configuration: no small talk (the
# intent stage's schema offers only question or task), no tools (the context stage judges
# with JSON), reflection on, and one reflection at most (whatever the score).
FOUR_STAGES = {
    "name": "four-stages",
    "instructions": "You answer questions about durable-agent.",
    "small_talk": False,
    "tools": [],
    "max_context_rounds": 1,
    "reflection": {"enabled": True, "threshold": 0.0, "max_retries": 0},
}


def _serving(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/v1/models", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    proc = start(
        [sys.executable, "-m", "tests.real_model.llama_server", "--port", str(port)],
        log=log,
        cwd=PROJECT_ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _serving(base), timeout=60, what="llama.cpp server", proc=proc)
    yield base
    stop(proc)


@dataclass
class RealStack:
    base_url: str
    env: dict[str, str]
    logs: Path
    workers: list[Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> None:
        log = self.logs / f"worker-{len(self.workers)}.log"
        self.workers.append(
            start([sys.executable, "worker.py"], env=self.env, log=log, cwd=PROJECT_ROOT)
        )

    def kill_worker(self) -> None:
        self.workers[-1].send_signal(signal.SIGKILL)
        self.workers[-1].wait()


@pytest.fixture(scope="module")
def real_stack(
    dev_server: DevServer, llama_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealStack]:
    logs = tmp_path_factory.mktemp("real-model-stack")
    # Two settings point the project at the local server (a bound on answers' length, and
    # temperature 0 so that the same prompt takes the same path every time; a price, so that
    # cost is recorded).
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": f"real-{uuid.uuid4().hex}",
        "DURABLE_AGENT_LLM": "openai",
        "DURABLE_AGENT_OPENAI_BASE_URL": f"{llama_server}/v1",
        "DURABLE_AGENT_MODEL": MODEL_ALIAS,
        "DURABLE_AGENT_MAX_TOKENS": str(MAX_TOKENS),
        "DURABLE_AGENT_TEMPERATURE": "0",
        "DURABLE_AGENT_PRICES": f'{{"{MODEL_ALIAS}": [{PRICE_IN}, {PRICE_OUT}]}}',
        "DURABLE_AGENT_NOTES_FILE": str(logs / "notes.txt"),
        "DURABLE_AGENT_DATA_DIR": str(logs),
    }
    stack = RealStack("", env, logs)
    stack.start_worker()
    gateway = start_gateway(env, logs / "gateway.log")
    stack.base_url = gateway.base_url
    try:
        yield stack
    finally:
        stop(gateway.proc)
        for worker in stack.workers:
            stop(worker)


async def _finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        run: dict[str, Any] = (await http.get(f"/api/v1/runs/{run_id}")).json()
        return run

    return await eventually(
        read,
        lambda run: run["status"] in ("completed", "failed", "cancelled"),
        deadline_s=100,
        interval=0.5,
        what=f"run {run_id} finished",
    )


async def test_small_talk_gets_an_answer(real_stack: RealStack) -> None:
    async with httpx.AsyncClient(base_url=real_stack.base_url, timeout=30) as http:
        created = await http.post("/api/v1/runs", json={"query": "hi"})
        run = await _finished(http, created.json()["run_id"])
    assert run["status"] == "completed", run["errors"]
    assert run["answer"] and run["answer"].strip()
    assert run["agent"] == "default"
    assert run["usage"]["tokens_in"] > 0 and run["usage"]["tokens_out"] > 0


async def test_a_factual_question_is_answered(real_stack: RealStack) -> None:
    # This model answers it at the intent stage (as small talk); whichever path it takes, the
    # run may only complete with an answer.
    async with httpx.AsyncClient(base_url=real_stack.base_url, timeout=30) as http:
        created = await http.post("/api/v1/runs", json={"query": "What is the capital of France?"})
        run = await _finished(http, created.json()["run_id"])
    assert run["status"] == "completed", run["errors"]
    assert run["answer"] and run["answer"].strip()


async def test_arithmetic_goes_to_the_calculator_whatever_the_model_says(
    real_stack: RealStack,
) -> None:
    async with httpx.AsyncClient(base_url=real_stack.base_url, timeout=30) as http:
        created = await http.post("/api/v1/runs", json={"query": "What is 17 * 23?"})
        run = await _finished(http, created.json()["run_id"])
    assert run["status"] == "completed", run["errors"]
    assert run["intent"] == "calculation"
    assert [(t["name"], t["ok"], t["result"]) for t in run["tool_calls"]] == [
        ("calculator", True, "17 * 23 = 391")
    ]
    assert run["answer"] and run["answer"].strip()
    names = [n["name"] for n in run["nodes"]]
    assert "tool-calculator" in names and "plan" in names


async def test_four_stages_on_the_real_model_survive_a_worker_killed_mid_stream(
    real_stack: RealStack,
) -> None:
    async with httpx.AsyncClient(base_url=real_stack.base_url, timeout=30) as http:
        created = await http.post(
            "/api/v1/runs",
            json={"agent": FOUR_STAGES, "query": "Explain what a durable workflow is."},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
        killed: list[Event] = []

        async def kill_at_first_token() -> list[Event]:
            # Kill the worker as soon as the final answer's first token reaches the client,
            # i.e. while the execute stage streams; a new worker takes the run over.
            events: list[Event] = []
            async for event in _events(real_stack.base_url, run_id):
                events.append(event)
                if event.type == "token" and not killed:
                    killed.append(event)
                    real_stack.kill_worker()
                    real_stack.start_worker()
                if event.type == "result":
                    break
            return events

        events = await asyncio.wait_for(kill_at_first_token(), timeout=100)
        run = (await http.get(f"/api/v1/runs/{run_id}")).json()

    assert killed, "no token was streamed"
    assert run["status"] == "completed", run["errors"]
    assert run["agent"] == "four-stages"
    # All four stages ran, each on the model: intent, context, execute (plan, steps), reflect.
    names = [n["name"] for n in run["nodes"]]
    assert names[:3] == ["intent", "list-tools", "context-round-1"], names
    assert names[3] == "plan" and names[-1] == "reflect", names
    steps = [n for n in names if n.startswith("step-")]
    assert steps == [f"step-{i + 1}" for i in range(len(run["plan"]))], names
    assert all(n["status"] == "completed" for n in run["nodes"])
    assert run["intent"] in ("question", "task") and run["tool_calls"] == []
    assert run["reflection_score"] is not None and 0 <= run["reflection_score"] <= 1
    # The killed attempt streamed tokens; a later attempt streamed the whole answer again, and
    # the answer is what that attempt streamed.
    last = steps[-1]
    tokens = [e for e in events if e.type == "token"]
    assert {t.data["node"] for t in tokens} == {last}
    assert killed[0].data["attempt"] == 1
    retried = [t for t in tokens if t.data["attempt"] > 1]
    assert retried, "no attempt after the kill streamed"
    final_attempt = max(t.data["attempt"] for t in tokens)
    answer = "".join(t.data["text"] for t in tokens if t.data["attempt"] == final_attempt)
    assert run["answer"] and run["answer"].strip() and answer == run["answer"]
    assert events[-1].type == "result" and events[-1].data["answer"] == run["answer"]
    # Usage and cost of every call: the price of the tokens counted.
    usage = run["usage"]
    assert usage["tokens_in"] > 0 and usage["tokens_out"] > 0
    assert usage["calls"] >= 5  # intent, context, plan, one call per step, reflect
    expected = (usage["tokens_in"] * PRICE_IN + usage["tokens_out"] * PRICE_OUT) / 1_000_000
    assert usage["cost_usd"] == pytest.approx(expected, rel=1e-3)
    for node in run["nodes"]:
        if node["name"] != "list-tools":
            assert node["usage"]["tokens_out"] > 0, node


async def _events(base_url: str, run_id: str) -> AsyncIterator[Event]:
    """The run's events as they come (read_events collects them; this yields each)."""
    timeout = httpx.Timeout(30, read=60)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as http,
        aconnect_sse(http, "GET", f"/api/v1/runs/{run_id}/events") as source,
    ):
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            if sse.data:
                event = json.loads(sse.data)
                yield Event(int(sse.id), event["type"], event["data"])
