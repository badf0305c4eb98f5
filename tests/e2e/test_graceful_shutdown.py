"""SIGTERM, as a deploy or a scale-down sends it, to real worker and gateway processes.

- The worker stops taking tasks but lets a running activity finish (`worker_shutdown_grace_s`);
  the run then goes on on the worker that replaces it, the activity having run once. Past the
  grace period the activity is handed back: cancelled, and retried on the new worker.
- The gateway ends its open event streams cleanly (no truncated chunk), exits 0, and the client
  resumes on another gateway from its Last-Event-ID without losing or repeating an event.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from config import PROJECT_ROOT
from devstack.processes import start, stop
from tests.conftest import DevServer
from tests.e2e.conftest import Gateway, start_gateway
from tests.e2e.sse import read_events
from tests.helpers import eventually, until

TOOLS_YAML = """
tools:
  - name: hold_parcel
    function: "tests.e2e.held_tool:hold_parcel"
"""


@dataclass
class Deployment:
    env: dict[str, str]
    logs: Path
    parcels: Path

    def worker(self, name: str, **settings: str) -> Popen[bytes]:
        env = {**self.env, **{f"DURABLE_AGENT_{k.upper()}": v for k, v in settings.items()}}
        return start(
            [sys.executable, "worker.py"], env=env, log=self.logs / f"{name}.log", cwd=PROJECT_ROOT
        )

    def gateway(self, name: str) -> Gateway:
        return start_gateway(self.env, self.logs / f"{name}.log")


@pytest.fixture
def deployment(dev_server: DevServer, tmp_path: Path) -> Iterator[Deployment]:
    (tmp_path / "tools.yaml").write_text(TOOLS_YAML, encoding="utf-8")
    parcels = tmp_path / "parcels"
    parcels.mkdir()
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": f"shutdown-{uuid.uuid4().hex}",
        "DURABLE_AGENT_DATA_DIR": str(tmp_path),
        "DURABLE_AGENT_NOTES_FILE": str(tmp_path / "notes.txt"),
        "DURABLE_AGENT_TOOLS_FILE": str(tmp_path / "tools.yaml"),
        "DURABLE_AGENT_TOOL_ENTRY_POINTS": "false",
    }
    yield Deployment(env, tmp_path, parcels)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _run_state(base_url: str, run_id: str, status: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            got: dict[str, Any] = (await http.get(f"/api/v1/runs/{run_id}")).json()
            return got

    return await eventually(read, lambda s: s["status"] == status, deadline_s=60, what=status)


def _start_run(base_url: str, query: str) -> str:
    response = httpx.post(f"{base_url}/api/v1/runs", json={"query": query}, timeout=30)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


@pytest.mark.parametrize("hand_back", [False, True], ids=["finishes", "hands-back"])
async def test_sigterm_lets_the_running_activity_finish_or_hands_it_back(
    deployment: Deployment, hand_back: bool
) -> None:
    parcel = deployment.parcels / "p1"
    grace = "0.5" if hand_back else "60"
    first = deployment.worker("worker-1", worker_shutdown_grace_s=grace)
    gateway = deployment.gateway("gateway")
    second: Popen[bytes] | None = None
    try:
        run_id = _start_run(gateway.base_url, f"Hold the parcel at {parcel} please")
        until(
            lambda: _lines(Path(f"{parcel}.started")),
            lambda n: n == 1,
            deadline_s=60,
            what="the tool activity running",
        )
        first.send_signal(signal.SIGTERM)
        log = deployment.logs / "worker-1.log"
        until(lambda: "worker shutting down" in log.read_text(), what="the worker draining")
        if hand_back:
            # Past the grace period the activity is cancelled and the worker exits: the
            # attempt goes back to Temporal, which retries it on the next worker.
            until(first.poll, lambda rc: rc is not None, deadline_s=30, what="worker exit")
            assert _lines(Path(f"{parcel}.done")) == 0
        else:
            # The worker waits for the running activity instead of cutting it short.
            assert first.poll() is None, "the worker exited with an activity in flight"
        await asyncio.to_thread(Path(f"{parcel}.release").touch)
        assert until(first.poll, lambda rc: rc is not None, deadline_s=30, what="exit") == 0
        second = deployment.worker("worker-2")
        state = await _run_state(gateway.base_url, run_id, "completed")
        assert f"parcel {parcel.name} released" in json.dumps(state["tool_calls"])
        assert _lines(Path(f"{parcel}.started")) == (2 if hand_back else 1)
        assert _lines(Path(f"{parcel}.done")) == 1
    finally:
        stop(gateway.proc)
        stop(first)
        if second is not None:
            stop(second)


async def test_sigterm_ends_event_streams_cleanly_and_they_resume_elsewhere(
    deployment: Deployment,
) -> None:
    worker = deployment.worker("worker")
    leaving, staying = deployment.gateway("gateway-1"), deployment.gateway("gateway-2")
    try:
        run_id = _start_run(leaving.base_url, "Plan my trip to Lisbon")
        seen: list[int] = []

        async def follow_until_the_gateway_goes() -> None:
            async with (
                httpx.AsyncClient(base_url=leaving.base_url, timeout=30) as http,
                aconnect_sse(http, "GET", f"/api/v1/runs/{run_id}/events") as source,
            ):
                assert source.response.status_code == 200
                # Ends without an exception only if the server closed the stream properly.
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue
                    seen.append(int(sse.id))
                    if json.loads(sse.data)["type"] == "question":
                        leaving.proc.send_signal(signal.SIGTERM)

        await asyncio.wait_for(follow_until_the_gateway_goes(), 60)
        # uvicorn finishes its shutdown, then re-raises the signal it got (so -SIGTERM).
        code = until(leaving.proc.poll, lambda rc: rc is not None, deadline_s=30)
        assert code in (0, -signal.SIGTERM), code
        log = (deployment.logs / "gateway-1.log").read_text()
        assert "Application shutdown complete" in log
        assert "without completing response" not in log
        assert seen == list(range(len(seen))), seen

        async with httpx.AsyncClient(base_url=staying.base_url, timeout=30) as http:
            answer = await http.post(
                f"/api/v1/runs/{run_id}/input", json={"text": "Three days in May"}
            )
        assert answer.status_code == 200, answer.text
        rest = await read_events(staying.base_url, run_id, last_event_id=seen[-1])
        resumed = seen + [event.id for event in rest]
        everything = await read_events(staying.base_url, run_id)
        assert resumed == [event.id for event in everything]
        assert rest[-1].type == "result" and rest[-1].data["status"] == "completed"
    finally:
        stop(leaving.proc)
        stop(staying.proc)
        stop(worker)
