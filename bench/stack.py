"""A throwaway stack for benchmarks: dev server, worker and gateway on free ports.

The dev server is started with the same command (and SQLite flags) as `make up`'s. Optionally a
second worker, a plain Temporal SDK worker running the hand-written baselines of
`bench/raw_workflows.py` on a task queue of its own (`raw_worker=True`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from config import PROJECT_ROOT
from devstack.processes import (
    dev_server_command,
    free_port,
    port_open,
    start,
    stop,
    wait_until,
)


@dataclass
class BenchStack:
    base_url: str
    temporal_address: str
    worker: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    raw_worker: subprocess.Popen[bytes] | None = None
    task_queue: str = ""
    raw_task_queue: str = ""
    folder: Path = Path()
    env: dict[str, str] = field(default_factory=dict)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """durable-agent's worker (`python worker.py`), as `make up` starts it."""
        self.worker = start(
            [sys.executable, "worker.py"],
            env=self.env,
            log=self.folder / "w.log",
            cwd=PROJECT_ROOT,
        )
        return self.worker

    def start_raw_worker(self) -> subprocess.Popen[bytes]:
        """The baselines' worker: the SDK's defaults, nothing of durable-agent's."""
        self.raw_worker = start(
            [
                sys.executable,
                "-m",
                "bench.raw_worker",
                "--address",
                self.temporal_address,
                "--task-queue",
                self.raw_task_queue,
            ],
            log=self.folder / "raw.log",
            cwd=PROJECT_ROOT,
        )
        return self.raw_worker


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def bench_stack(
    extra_env: dict[str, str] | None = None,
    *,
    worker: bool = True,
    gateway: bool = True,
    raw_worker: bool = False,
) -> Iterator[BenchStack]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, http_port = free_port(), free_port()
        server = start(
            dev_server_command(folder / "t.db", "127.0.0.1", port, None), log=folder / "t.log"
        )
        address = f"127.0.0.1:{port}"
        queue = f"bench-{uuid.uuid4().hex}"
        env = {
            "DURABLE_AGENT_TEMPORAL_ADDRESS": address,
            "DURABLE_AGENT_TASK_QUEUE": queue,
            "DURABLE_AGENT_DATA_DIR": str(folder),
            **(extra_env or {}),
        }
        stack = BenchStack(
            base_url=f"http://127.0.0.1:{http_port}",
            temporal_address=address,
            server=server,
            task_queue=queue,
            raw_task_queue=f"raw-{uuid.uuid4().hex}",
            folder=folder,
            env=env,
        )
        try:
            wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="server")
            if worker:
                stack.start_worker()
            if raw_worker:
                stack.start_raw_worker()
            if gateway:
                stack.gateway = start(
                    [
                        sys.executable,
                        "-m",
                        "app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(http_port),
                        "--log-level",
                        "warning",
                    ],
                    env=env,
                    log=folder / "g.log",
                    cwd=PROJECT_ROOT,
                )
                wait_until(
                    lambda: _healthy(stack.base_url + "/healthz"), timeout=60, what="gateway"
                )
            yield stack
        finally:
            for proc in (stack.gateway, stack.raw_worker, stack.worker, server):
                if proc is not None:
                    stop(proc)
