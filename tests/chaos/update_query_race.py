"""The smallest setup that reproduces the stuck run of docs/durability.md: an input Update whose
workflow task runs on one worker while the run's queries go to another, after the sticky link
between run and worker was lost (workers and the Temporal server SIGKILLed and restarted).

    python -m tests.chaos.update_query_race --runs 30 --trials 5                 # hits
    python -m tests.chaos.update_query_race --runs 30 --trials 5 --input signal  # does not

Each trial: a dev server on a file database and two `worker.py` processes; `--runs` agent runs
brought to `waiting_for_input`; both workers and the server SIGKILLed, the server restarted on
the same database and two fresh workers started; then every run gets its input (the `submit_input`
Update, or with `--input signal` the `provide_input` signal the gateway sends) while three
clients per run keep querying it; finally each completed run is queried
`--probes` times. A trial hits when a worker logs the SDK's nondeterminism error or a completed
run stops answering its queries. Probabilistic: 4 of 8 trials hit with 30 runs on a 2-core
machine, and 0 of 8 with `--input signal` (docs/durability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from subprocess import Popen
from typing import Any

from temporalio.client import Client, WorkflowHandle

from config import PROJECT_ROOT, Settings
from devstack.processes import (
    dev_server_command,
    free_port,
    kill,
    port_open,
    start,
    stop,
    wait_until,
)
from temporal_client import connect, ensure_search_attributes
from tests.chaos.driver import ANSI, REPLAY_FAILURE_SIGNS
from tests.helpers import eventually
from workflows.agent import AgentWorkflow
from workflows.state import AgentInput, InputCheck, RunStatus, UserInput


class Stack:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            "DURABLE_AGENT_TEMPORAL_ADDRESS": self.address,
            "DURABLE_AGENT_TASK_QUEUE": f"race-{uuid.uuid4().hex}",
        }
        self.server: Popen[bytes] | None = None
        self.workers: list[Popen[bytes]] = []
        self.logs = 0

    def _log(self, name: str) -> Path:
        self.logs += 1
        return self.folder / f"{self.logs:02d}-{name}.log"

    def start_server(self) -> None:
        cmd = dev_server_command(self.folder / "temporal.db", "127.0.0.1", self.port, None)
        self.server = start(cmd, log=self._log("temporal"))
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=30, what="dev server")

    def start_workers(self) -> None:
        self.workers = [
            start(
                [sys.executable, "worker.py"],
                env=self.env,
                log=self._log(f"worker{i}"),
                cwd=PROJECT_ROOT,
            )
            for i in range(2)
        ]

    def kill_all(self) -> None:
        for proc in [*self.workers, self.server]:
            if proc is not None:
                kill(proc)

    def stop_all(self) -> None:
        for proc in [*self.workers, self.server]:
            if proc is not None:
                stop(proc)

    def replay_failures(self) -> list[str]:
        return [
            f"{log.name}: {ANSI.sub('', line)[-200:]}"
            for log in sorted(self.folder.glob("*-worker*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if any(sign in line for sign in REPLAY_FAILURE_SIGNS)
        ]


async def _state(handle: WorkflowHandle[Any, Any], rpc_timeout_s: float) -> dict[str, Any]:
    state: dict[str, Any] = await handle.query(
        "get_state", result_type=dict, rpc_timeout=timedelta(seconds=rpc_timeout_s)
    )
    return state


async def answer(handle: WorkflowHandle[Any, Any], via: str) -> None:
    """The run's input: as the `submit_input` update, or as the gateway sends it (the
    `provide_input` signal with an input id, until `check_input` says it was taken)."""
    payload = UserInput(text="Three days in May", input_id=f"input-{handle.id}")
    if via == "update":
        await eventually(
            lambda: handle.execute_update(
                AgentWorkflow.submit_input,
                payload,
                id=payload.input_id,
                rpc_timeout=timedelta(seconds=10),
            ),
            deadline_s=120,
            interval=0.2,
            what=f"the input of {handle.id}",
        )
        return

    async def taken() -> bool:
        check: InputCheck = await handle.query(
            AgentWorkflow.check_input, payload, rpc_timeout=timedelta(seconds=5)
        )
        if not check.taken:  # not yet, or the signal was lost with a killed server: (re)send
            await handle.signal(AgentWorkflow.provide_input, payload)
        return check.taken

    await eventually(taken, deadline_s=120, interval=0.2, what=f"the input of {handle.id}")


async def trial(runs: int, probes: int, via: str) -> tuple[list[str], list[str], Path]:
    """(nondeterminism lines the workers logged, runs that stopped answering, the folder of
    the logs and database: removed unless the trial hit)."""
    stack = Stack(Path(tempfile.mkdtemp(prefix="update-race-")))
    stack.start_server()
    stack.start_workers()
    try:
        settings = Settings(
            temporal_address=stack.address, task_queue=stack.env["DURABLE_AGENT_TASK_QUEUE"]
        )
        client: Client = await connect(settings)
        await ensure_search_attributes(client, settings.namespace)
        handles = [
            await client.start_workflow(
                AgentWorkflow.run,
                AgentInput(query="Plan my trip to Lisbon"),
                id=f"race-{i}-{uuid.uuid4().hex[:8]}",
                task_queue=settings.task_queue,
            )
            for i in range(runs)
        ]
        for handle in handles:
            await eventually(
                lambda h=handle: _state(h, 5),
                lambda s: s["status"] == RunStatus.WAITING_FOR_INPUT.value,
                deadline_s=60,
                what=f"{handle.id} waiting",
            )
        # Every sticky link is lost: the workers that hold the runs and the server die.
        await asyncio.to_thread(stack.kill_all)
        await asyncio.to_thread(stack.start_server)
        await asyncio.to_thread(stack.start_workers)
        done = asyncio.Event()

        async def keep_querying(handle: WorkflowHandle[Any, Any]) -> None:
            while not done.is_set():
                try:
                    await _state(handle, 5)
                except Exception:  # the point is the traffic, not the answers
                    await asyncio.sleep(0.1)

        readers = [asyncio.create_task(keep_querying(h)) for h in handles for _ in range(3)]
        await asyncio.gather(*(answer(handle, via) for handle in handles))
        for handle in handles:
            await handle.result(rpc_timeout=timedelta(seconds=120))
        done.set()
        await asyncio.gather(*readers)
        unanswered = []
        for handle in handles:
            answered = 0
            for _ in range(probes):
                try:
                    await _state(handle, 3)
                    answered += 1
                except Exception:
                    pass
            if answered < probes:
                unanswered.append(f"{handle.id}: {answered}/{probes} queries answered")
        failures = stack.replay_failures()
    finally:
        await asyncio.to_thread(stack.stop_all)
    if not (failures or unanswered):
        shutil.rmtree(stack.folder, ignore_errors=True)
    return failures, unanswered, stack.folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--probes", type=int, default=8)
    parser.add_argument(
        "--input",
        choices=["update", "signal"],
        default="update",
        help="update: the SDK failure; signal: the gateway's way, which avoids it",
    )
    args = parser.parse_args()
    hits = 0
    for number in range(1, args.trials + 1):
        failures, unanswered, folder = asyncio.run(trial(args.runs, args.probes, args.input))
        hit = bool(failures or unanswered)
        hits += hit
        sys.stdout.write(
            f"trial {number}: nondeterminism={len(failures)} unanswered={len(unanswered)}\n"
        )
        for line in [*failures, *unanswered][:5]:
            sys.stdout.write(f"  {line}\n")
        if hit:
            sys.stdout.write(f"  logs and database kept in {folder}\n")
        sys.stdout.flush()
    sys.stdout.write(f"update_query_race: {hits}/{args.trials} trials hit\n")
    sys.exit(1 if hits else 0)


if __name__ == "__main__":
    main()
