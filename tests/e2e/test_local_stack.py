"""`make up` as a user runs it: real processes, real SIGKILL, real Ctrl-C, real pipes.

Each stack runs on free ports with its own data folder, so these tests never touch a stack a
developer (or another test run) has on the default ports. `make -o install` skips the install
step (the test suite is already installed) and `PY=` names this interpreter; everything else is
the Makefile's own `up` recipe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from config import PROJECT_ROOT
from devstack.processes import free_port, port_open, start, stop
from tests.conftest import DevServer
from tests.helpers import until, with_default_sigint

SERVER, WORKER, GATEWAY = "Temporal dev server", "worker", "gateway"
# What must never appear when a stack starts or stops.
NOISE = ("Fatal Python error", "Traceback", "panicked", "Error")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class LocalStack:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    log: Path
    ports: dict[str, int]

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.data_dir / "stack.json").read_text())
        return result

    def pids(self) -> dict[str, int]:
        return dict(self.state()["processes"])

    def wait_up(self) -> None:
        until(
            lambda: "durable-agent is up" in self.output(),
            deadline_s=90,
            what=f"the stack to be up; output:\n{self.output()}",
        )

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.ctrl_c()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _stack_env(data_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {"temporal": free_port(), "web_ui": free_port(), "gateway": free_port()}
    env = {
        **os.environ,
        "DURABLE_AGENT_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "DURABLE_AGENT_DEV_SERVER_UI_PORT": str(ports["web_ui"]),
        "DURABLE_AGENT_GATEWAY_PORT": str(ports["gateway"]),
        "DURABLE_AGENT_DATA_DIR": str(data_dir),
        "DURABLE_AGENT_NOTES_FILE": str(data_dir / "notes.txt"),
        "DURABLE_AGENT_TASK_QUEUE": f"up-{uuid.uuid4().hex}",
    }
    return env, ports


def _make_up() -> list[str]:
    return ["make", "-s", "--no-print-directory", "-o", "install", "up", f"PY={sys.executable}"]


def launch(tmp_path: Path, *, through: str | None = None) -> LocalStack:
    """`make up` in a session of its own (as in a terminal: one foreground process group), with
    SIGINT's default action so that a Ctrl-C reaches it however this test was launched.
    `through`: a shell pipeline to run it in, `{make_up}` standing for the command."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env, ports = _stack_env(data_dir)
    log = tmp_path / "output.log"
    command = " ".join(_make_up())
    cmd = ["bash", "-c", through.format(make_up=command, log=log)] if through else _make_up()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            with_default_sigint(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if through else out,
            stderr=subprocess.DEVNULL if through else subprocess.STDOUT,
            env=env,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    return LocalStack(proc, env, data_dir, log, ports)


Launch = Callable[..., LocalStack]


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[Launch]:
    """`local_stack(through=...)` launches a stack; each is stopped when the test ends."""
    stacks: list[LocalStack] = []

    def run(**kwargs: Any) -> LocalStack:
        folder = tmp_path / f"stack-{len(stacks)}"
        folder.mkdir()
        stacks.append(launch(folder, **kwargs))
        return stacks[-1]

    yield run
    for stack in stacks:
        stack.close()


def test_a_killed_process_is_restarted_and_the_others_keep_running(local_stack: Launch):
    stack = local_stack()
    stack.wait_up()
    for name in (WORKER, GATEWAY, SERVER):
        before = stack.pids()
        os.kill(before[name], signal.SIGKILL)
        after = until(
            stack.pids,
            lambda pids, name=name, old=before[name]: pids[name] != old and _alive(pids[name]),
            deadline_s=30,
            what=f"a new {name}",
        )
        assert f"{name} (pid {before[name]}) was killed by SIGKILL; restarting it in 1s" in (
            stack.output()
        )
        assert f"{name} restarted (pid {after[name]})" in stack.output()
        others = {k: v for k, v in after.items() if k != name}
        assert others == {k: v for k, v in before.items() if k != name}
        assert all(_alive(pid) for pid in others.values())
        assert stack.proc.poll() is None

    # The restarted server, worker and gateway still do the work.
    with httpx.Client(base_url=stack.gateway, timeout=30) as http:
        run_id = until(
            lambda: http.post("/api/v1/runs", json={"query": "What is 17 * 23?"}),
            lambda r: r.status_code == 201,
            deadline_s=30,
            what="the gateway to start a run",
        ).json()["run_id"]
        done = until(
            lambda: http.get(f"/api/v1/runs/{run_id}").json(),
            lambda state: state.get("status") == "completed",
            deadline_s=60,
            what="the run to complete",
        )
        assert "391" in done["answer"]


def test_ctrl_c_stops_everything_cleanly_and_silently(local_stack: Launch):
    stack = local_stack()
    stack.wait_up()
    pids = stack.pids()
    stack.ctrl_c()
    stack.proc.wait(60)  # make's own status: killed by the SIGINT, as after any Ctrl-C
    until(lambda: not any(_alive(pid) for pid in pids.values()), what="every process to stop")
    assert not any(port_open("127.0.0.1", port) for port in stack.ports.values())
    assert not (stack.data_dir / "stack.json").exists()
    output = stack.output()
    assert "stopping gateway" in output and "stopping Temporal dev server" in output
    assert not [word for word in NOISE if word in output], output


def test_the_worker_stops_silently_every_time(dev_server: DevServer, tmp_path: Path):
    """The worker used to abort at exit now and then ("Fatal Python error: PyGILState_Release
    ... finalizing", about 1 stop in 10): stop it many times, by SIGINT and by SIGTERM."""
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": f"stop-{uuid.uuid4().hex}",
        "DURABLE_AGENT_DATA_DIR": str(tmp_path),
    }
    for attempt in range(16):
        log = tmp_path / f"worker-{attempt}.log"
        proc = start(
            with_default_sigint([sys.executable, "worker.py"]), env=env, log=log, cwd=PROJECT_ROOT
        )
        try:
            until(lambda log=log: "worker polling" in log.read_text(), what="the worker to poll")
            proc.send_signal(signal.SIGINT if attempt % 2 else signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
        finally:
            stop(proc)
        output = log.read_text()
        assert "worker shutting down" in output
        assert not [word for word in NOISE if word in output], output


def test_a_second_make_up_names_the_running_stack_and_leaves_it_alone(local_stack: Launch):
    first = local_stack()
    first.wait_up()
    before = first.pids()

    same_folder = subprocess.run(
        _make_up(), env=first.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert same_folder.returncode != 0
    launcher = first.state()["pid"]
    assert f"durable-agent is already running (pid {launcher}" in same_folder.stderr
    assert first.env["DURABLE_AGENT_TEMPORAL_ADDRESS"] in same_folder.stderr
    assert first.gateway in same_folder.stderr
    assert "is up" not in same_folder.stdout
    assert "Traceback" not in same_folder.stderr and "panicked" not in same_folder.stderr

    # Another data folder, the same ports: the busy port is named with the process holding it.
    other = first.data_dir.parent / "other"
    other.mkdir()
    other_folder = subprocess.run(
        _make_up(),
        env={**first.env, "DURABLE_AGENT_DATA_DIR": str(other)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other_folder.returncode != 0
    port = first.ports["gateway"]
    assert f"port {port} (gateway) is in use by pid {before[GATEWAY]}" in other_folder.stderr
    assert "is up" not in other_folder.stdout and "Traceback" not in other_folder.stderr

    # The first stack never noticed.
    assert first.pids() == before and all(_alive(pid) for pid in before.values())
    assert httpx.get(first.gateway + "/healthz", timeout=10).status_code == 200
    assert first.proc.poll() is None


def test_ctrl_c_with_output_piped_to_tee_stops_everything(local_stack: Launch):
    # tee dies of the Ctrl-C first; the launcher's output then goes nowhere.
    stack = local_stack(through="{make_up} 2>&1 | tee {log}")
    stack.wait_up()
    pids = [stack.state()["pid"], *stack.pids().values()]
    stack.ctrl_c()
    stack.proc.wait(60)
    until(
        lambda: not any(_alive(pid) for pid in pids),
        deadline_s=30,
        what="the launcher, server, worker and gateway to stop",
    )
    assert not any(port_open("127.0.0.1", port) for port in stack.ports.values())


def test_nothing_outlives_a_killed_launcher(local_stack: Launch):
    stack = local_stack()
    stack.wait_up()
    pids = stack.pids()
    os.kill(stack.state()["pid"], signal.SIGKILL)  # no chance to stop anything itself
    until(
        lambda: not any(_alive(pid) for pid in pids.values()),
        deadline_s=30,
        what="the server, worker and gateway to stop",
    )
    assert not any(port_open("127.0.0.1", port) for port in stack.ports.values())
