"""The pipeline on a real model server that we did not write: llama.cpp's server (PyPI
`xllamacpp`) with SmolLM2-135M-Instruct, a real process on a free port, behind the real worker
and gateway. The model is tiny: these tests assert on shapes and the lifecycle, never on wisdom.

    make test-real-model        # just these (they are part of `make test` too)
"""

from __future__ import annotations

import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest

from config import PROJECT_ROOT
from devstack.processes import free_port, start, stop, wait_until
from tests.conftest import DevServer
from tests.e2e.conftest import start_gateway
from tests.helpers import eventually
from tests.real_model.llama_server import MODEL_ALIAS

pytestmark = pytest.mark.real_model

# Small answers keep a run within seconds on one CPU thread.
MAX_TOKENS = 320


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
    # Two settings point the project at the local server (and a bound on answers' length).
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": f"real-{uuid.uuid4().hex}",
        "DURABLE_AGENT_LLM": "openai",
        "DURABLE_AGENT_OPENAI_BASE_URL": f"{llama_server}/v1",
        "DURABLE_AGENT_MODEL": MODEL_ALIAS,
        "DURABLE_AGENT_MAX_TOKENS": str(MAX_TOKENS),
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
