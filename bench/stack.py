"""A throwaway stack for benchmarks: dev server, worker and gateway on free ports."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def bench_stack(extra_env: dict[str, str] | None = None) -> Iterator[BenchStack]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, http_port = free_port(), free_port()
        server = start(
            dev_server_command(folder / "t.db", "127.0.0.1", port, None), log=folder / "t.log"
        )
        procs = [server]
        try:
            wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="server")
            env = {
                "DURABLE_AGENT_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
                "DURABLE_AGENT_TASK_QUEUE": f"bench-{uuid.uuid4().hex}",
                "DURABLE_AGENT_DATA_DIR": str(folder),
                **(extra_env or {}),
            }
            worker = start(
                [sys.executable, "worker.py"], env=env, log=folder / "w.log", cwd=PROJECT_ROOT
            )
            procs.append(worker)
            gateway = start(
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
            procs.append(gateway)
            base = f"http://127.0.0.1:{http_port}"
            wait_until(lambda: _healthy(base + "/healthz"), timeout=60, what="gateway")
            yield BenchStack(base, f"127.0.0.1:{port}", worker)
        finally:
            for proc in reversed(procs):
                stop(proc)
