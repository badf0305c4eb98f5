"""User tools end to end: `python worker.py` and the gateway as processes with a tools file of
real MCP servers (stdio and streamable HTTP), the HTTP API, the terminal client, and a SIGKILL
of the worker while an MCP call runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest

from config import PROJECT_ROOT
from devstack.processes import start, stop
from tests.conftest import DevServer
from tests.e2e.conftest import start_gateway
from tests.helpers import eventually
from tests.mcp_servers.servers import HttpServer, tools_yaml

CLI = str(Path(sys.executable).parent / "durable-agent")
SECRET = "hdr-secret-4e7d1c0a"


@dataclass
class ToolStack:
    base_url: str
    env: dict[str, str]
    files: Path
    logs: Path
    worker: Popen[bytes]

    def start_worker(self) -> None:
        self.worker = start(
            [sys.executable, "worker.py"],
            env=self.env,
            log=self.logs / "worker.log",
            cwd=PROJECT_ROOT,
        )


@pytest.fixture(scope="module")
def tool_stack(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory, everything_http: HttpServer
) -> Iterator[ToolStack]:
    logs = tmp_path_factory.mktemp("tools-e2e")
    files = logs / "files"
    files.mkdir()
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": f"tools-{uuid.uuid4().hex}",
        "DURABLE_AGENT_DATA_DIR": str(logs),
        "DURABLE_AGENT_NOTES_FILE": str(logs / "notes.txt"),
        "DURABLE_AGENT_TOOLS_FILE": str(
            tools_yaml(logs, http_url=everything_http.url, files_dir=files)
        ),
        "MCP_TEST_TOKEN": SECRET,
    }
    stack = ToolStack("", env, files, logs, None)  # type: ignore[arg-type]
    stack.start_worker()
    gateway = start_gateway(env, logs / "gateway.log")
    stack.base_url = gateway.base_url
    try:
        yield stack
    finally:
        stop(gateway.proc)
        stop(stack.worker)


def _http(stack: ToolStack) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=30)


def _start(stack: ToolStack, query: str) -> str:
    with _http(stack) as http:
        response = http.post("/api/v1/runs", json={"query": query})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def _state(stack: ToolStack, run_id: str, predicate: Any, what: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            got: dict[str, Any] = (await http.get(f"/api/v1/runs/{run_id}")).json()
            return got

    return await eventually(read, predicate, deadline_s=60, what=what)


def test_tools_are_listed_over_http_and_by_the_terminal_client(tool_stack: ToolStack) -> None:
    with _http(tool_stack) as http:
        listing = http.get("/api/v1/tools").json()
    tools = {tool["name"]: tool for tool in listing["tools"]}
    assert listing["unavailable"] == {}
    assert tools["calculator"]["source"] == "builtin"
    assert tools["append_note"]["approval"] == "always"
    assert tools["lookup_order"]["source"] == "python"
    assert tools["lookup_order"]["parameters"]["required"] == ["order_id"]
    assert tools["time.get_current_time"]["source"] == "mcp:time"
    assert tools["time.get_current_time"]["parameters"]["required"] == ["timezone"]
    assert tools["fs.write_file"]["approval"] == "always"  # the server marks it destructive
    assert tools["web.echo"]["source"] == "mcp:web"
    done = subprocess.run(
        [CLI, "tools"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DURABLE_AGENT_URL": tool_stack.base_url},
    )
    assert done.returncode == 0, done.stderr
    assert "time.get_current_time" in done.stdout and "mcp:time" in done.stdout
    for log in ("worker.log", "gateway.log"):
        assert SECRET not in (tool_stack.logs / log).read_text()


async def test_approval_over_http_unknown_decided_and_denied(tool_stack: ToolStack) -> None:
    target = tool_stack.files / "http-denied.txt"
    run_id = _start(tool_stack, f"Write the file {target}")
    state = await _state(
        tool_stack, run_id, lambda s: s["status"] == "waiting_for_approval", "approval"
    )
    (approval,) = state["approvals"]
    assert approval["tool"] == "fs.write_file" and approval["status"] == "pending"
    with _http(tool_stack) as http:
        base = f"/api/v1/runs/{run_id}/approvals"
        unknown = http.post(f"{base}/approval-99", json={"approve": True})
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["error"]["code"] == "approval_not_found"
        bad = http.post(f"{base}/{approval['id']}", json={"approve": "perhaps"})
        assert bad.status_code == 422
        denied = http.post(f"{base}/{approval['id']}", json={"approve": False, "reason": "no"})
        assert denied.status_code == 200, denied.text
        assert denied.json()["decision"] == "denied"
        again = http.post(f"{base}/{approval['id']}", json={"approve": True})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "invalid_state"
        foreign = http.post("/api/v1/runs/run-nope/approvals/approval-1", json={"approve": True})
        assert foreign.status_code == 404
    state = await _state(
        tool_stack, run_id, lambda s: s["status"] == "waiting_for_input", "the denial reported"
    )
    assert not target.exists()
    assert state["tool_calls"][0]["result"].startswith("denied by a person: no")
    assert [e["kind"] for e in state["events"]].count("approval") == 2
    with _http(tool_stack) as http:
        assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 202
        # The stream ends with the run; its `approval` events are there, requested and decided.
        events = http.get(f"/api/v1/runs/{run_id}/events").text
    assert events.count("event: approval") == 2


def test_the_terminal_client_approves_with_y(tool_stack: ToolStack) -> None:
    target = tool_stack.files / "cli-approved.txt"
    done = subprocess.run(
        [CLI, "run", f"Write the file {target}"],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "DURABLE_AGENT_URL": tool_stack.base_url},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "? fs.write_file wants to run with" in done.stdout
    assert "approval-1 fs.write_file: approved" in done.stdout
    assert target.read_text() == f"Write the file {target}"


async def test_a_worker_killed_during_an_mcp_call_still_completes_the_run(
    tool_stack: ToolStack,
) -> None:
    run_id = _start(tool_stack, "Trigger a long running operation of 4 seconds")
    tool_node = "tool-everything.trigger-long-running-operation"
    await _state(
        tool_stack,
        run_id,
        lambda s: any(n["name"] == tool_node and n["status"] == "executing" for n in s["nodes"]),
        "the MCP call running",
    )
    os.kill(tool_stack.worker.pid, signal.SIGKILL)  # mid-call: no goodbye, no completion
    tool_stack.worker.wait()
    tool_stack.start_worker()
    state = await _state(tool_stack, run_id, lambda s: s["status"] == "completed", "completed")
    (call,) = [c for c in state["tool_calls"] if c["name"].startswith("everything.")]
    assert call["ok"] and "Long running operation completed" in call["result"]
    assert "everything.trigger-long-running-operation" in (state["answer"] or "")
    describe = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "temporal"),
            "workflow",
            "show",
            "--workflow-id",
            run_id,
            "--address",
            tool_stack.env["DURABLE_AGENT_TEMPORAL_ADDRESS"],
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"attempt": 2' in describe.stdout  # the call was retried on the new worker
