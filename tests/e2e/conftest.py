"""The real stack for e2e tests: worker.py and the gateway (`python -m app`) as subprocesses,
against the session's dev server, on a task queue of their own."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx
import pytest

from config import PROJECT_ROOT
from devstack.processes import free_port, start, stop, wait_until
from tests.conftest import DevServer


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Gateway:
    base_url: str
    proc: Popen[bytes]


def start_gateway(env: dict[str, str], log: Path) -> Gateway:
    port = free_port()
    proc = start(
        [
            sys.executable,
            "-m",
            "app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        log=log,
        cwd=PROJECT_ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(base + "/healthz"), timeout=60, what="gateway", proc=proc)
    return Gateway(base, proc)


@dataclass
class Stack:
    base_url: str
    temporal_address: str
    task_queue: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def stack(dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("e2e-logs")
    task_queue = f"e2e-{uuid.uuid4().hex}"
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": task_queue,
        "DURABLE_AGENT_MAX_INPUT_CHARS": "100",
        "DURABLE_AGENT_NOTES_FILE": str(logs / "notes.txt"),
        "DURABLE_AGENT_DATA_DIR": str(logs),
    }
    worker = start(
        [sys.executable, "worker.py"], env=env, log=logs / "worker.log", cwd=PROJECT_ROOT
    )
    gateway = start_gateway(env, logs / "gateway.log")
    try:
        yield Stack(gateway.base_url, dev_server.address, task_queue, env)
    finally:
        stop(gateway.proc)
        stop(worker)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client
