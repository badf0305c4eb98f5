"""The scale-out driver: N workers and M gateways on one task queue against one dev server,
under a load of agent runs (about two in five wait for a person's answer), optionally with one
worker and one gateway SIGKILLed mid-load and left dead.

    python -m tests.chaos.scale --runs 200 --workers 2 --gateways 2 --kill   # the e2e test
    python -m tests.chaos.scale --runs 200 --workers 1 --gateways 1          # a sizing baseline

There is no load balancer: clients alternate between the gateways (run i starts through
gateway i % M and is answered through the next one), and a request a gateway cannot serve is
sent, unchanged (same Idempotency-Key), to the next. Then Temporal itself is asked: one
completed execution per run id and no other execution on the task queue (nothing lost, nothing
started twice), and each run's final state holds its answer, taken once (`inputs_taken`).

The processes are the chaos suite's (`tests.chaos.driver.Cluster`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from config import Settings
from devstack.processes import kill
from temporal_client import connect
from tests.chaos.driver import CITIES, Cluster
from tests.helpers import eventually
from workflows.state import AgentState

# Runs in flight at once (started, not completed): the load the workers carry.
IN_FLIGHT = 60
# A bound on the whole load, so a hang fails instead of blocking (not a timing check).
DEADLINE_S = 240.0
REQUEST_DEADLINE_S = 60.0


@dataclass
class Run:
    index: int
    key: str
    query: str
    expect: str  # a substring of the answer
    answer: str | None = None  # what the person answers, for runs that ask
    run_id: str | None = None
    state: AgentState | None = None
    problem: str | None = None


def make_runs(n: int, rng: random.Random) -> list[Run]:
    runs = []
    for i in range(n):
        key = f"scale-{i}-{uuid.uuid4().hex[:8]}"
        kind = rng.choices(["question", "calc", "chat"], weights=[4, 3, 3])[0]
        if kind == "question":
            city, days = rng.choice(CITIES), rng.randint(2, 9)
            text = f"{days} days in {city}"
            runs.append(Run(i, key, f"Plan my trip to {city}", text, text))
        elif kind == "calc":
            a, b = rng.randint(2, 999), rng.randint(2, 999)
            runs.append(Run(i, key, f"What is {a} * {b}?", str(a * b)))
        else:
            runs.append(Run(i, key, "hello", "Hello"))
    return runs


@dataclass
class Gateways:
    """The clients' side: no load balancer. A request goes to the gateway it was meant for; a
    connection the gateway cannot serve (refused, reset: the process is dead) or a 503 sends it
    to the next one, unchanged."""

    clients: list[httpx.AsyncClient]
    failovers: Counter[str] = field(default_factory=Counter)

    async def request(self, first: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        index, last = first, ""
        while time.monotonic() < deadline:
            try:
                response = await self.clients[index].request(method, path, **kwargs)
                if response.status_code != 503:
                    return response
                last = response.text[:200]
                self.failovers["503"] += 1
            except httpx.ConnectError as exc:
                last = repr(exc)
                self.failovers["refused"] += 1
            except httpx.TransportError as exc:  # cut off mid-request by the kill
                last = repr(exc)
                self.failovers["cut off"] += 1
            index = (index + 1) % len(self.clients)
            # A pause between attempts (not synchronisation): both gateways may answer 503 while
            # Temporal reassigns the dead worker's tasks.
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{method} {path}: no gateway answered; last: {last}")


class Load:
    def __init__(self, cluster: Cluster, gateways: Gateways, temporal: Client, runs: list[Run]):
        self.cluster = cluster
        self.gateways = gateways
        self.temporal = temporal
        self.runs = runs
        self.by_id: dict[str, Run] = {}
        self.answered: set[str] = set()
        self.completed = 0
        self.kill_now = asyncio.Event()
        self.killed: dict[str, float] = {}
        self.in_flight_at_kill = 0
        self.unanswered_at_kill = 0

    async def one(self, run: Run, slots: asyncio.Semaphore) -> None:
        async with slots:
            try:
                response = await self.gateways.request(
                    run.index % len(self.gateways.clients),
                    "POST",
                    "/api/v1/runs",
                    json={"query": run.query},
                    headers={"Idempotency-Key": run.key},
                )
                if response.status_code not in (200, 201):
                    run.problem = f"start: {response.status_code} {response.text[:200]}"
                    return
                run.run_id = response.json()["run_id"]
                self.by_id[run.run_id] = run
                # Temporal's long poll for the result: no worker is asked anything.
                handle = self.temporal.get_workflow_handle(run.run_id, result_type=AgentState)
                run.state = await handle.result()
            except Exception as exc:  # the run's problem is reported with all the others
                run.problem = f"{type(exc).__name__}: {exc}"[:300]
            finally:
                self.completed += 1
                if self.completed >= len(self.runs) // 3:
                    self.kill_now.set()

    async def person(self, done: asyncio.Event) -> None:
        """Answers every run that waits, as soon as the list of waiting runs (Temporal's
        visibility, through either gateway) shows it: one poll for all, not one per run."""
        poll = 0
        pending: set[asyncio.Task[None]] = set()
        while not done.is_set():
            poll += 1
            response = await self.gateways.request(
                poll % len(self.gateways.clients),
                "GET",
                "/api/v1/runs",
                params={"status": "waiting_for_input", "page_size": 100},
            )
            for row in response.json()["runs"]:
                run = self.by_id.get(row["run_id"])
                if run is None or run.run_id in self.answered or run.answer is None:
                    continue
                self.answered.add(row["run_id"])
                task = asyncio.create_task(self.answer(run))
                pending.add(task)
                task.add_done_callback(pending.discard)
            # The person's polling period (workload, not synchronisation).
            await asyncio.sleep(0.3)
        await asyncio.gather(*pending)

    async def answer(self, run: Run) -> None:
        # Through the gateway the run was not started on; retried elsewhere with the same key.
        response = await self.gateways.request(
            (run.index + 1) % len(self.gateways.clients),
            "POST",
            f"/api/v1/runs/{run.run_id}/input",
            json={"text": run.answer},
            headers={"Idempotency-Key": f"answer-{run.key}"},
        )
        if response.status_code != 200:
            run.problem = f"answer: {response.status_code} {response.text[:200]}"

    async def kill_one_of_each(self) -> None:
        """SIGKILL worker 0 and gateway 0 once a third of the runs have completed (before,
        during and after, runs are being started, answered and completed); they stay dead, so
        the other worker and gateway carry the rest."""
        await self.kill_now.wait()
        started = [run for run in self.runs if run.run_id and run.state is None]
        self.in_flight_at_kill = len(started)
        self.unanswered_at_kill = sum(
            1 for run in started if run.answer and run.run_id not in self.answered
        )
        for kind, procs in (("worker", self.cluster.workers), ("gateway", self.cluster.gateways)):
            proc = procs[0]
            assert proc is not None
            await asyncio.to_thread(kill, proc)
            self.killed[kind] = time.monotonic()


async def list_executions(
    temporal: Client, task_queue: str, expected: int
) -> list[tuple[str, WorkflowExecutionStatus | None]]:
    """Every workflow execution on the task queue, as Temporal's visibility lists them (it
    trails the runs' results a little: read again until it shows `expected` closed ones)."""
    query = f'TaskQueue="{task_queue}"'

    async def listing() -> list[tuple[str, WorkflowExecutionStatus | None]]:
        return [(e.id, e.status) async for e in temporal.list_workflows(query)]

    try:
        return await eventually(
            listing,
            lambda rows: (
                len(rows) >= expected
                and all(status != WorkflowExecutionStatus.RUNNING for _, status in rows)
            ),
            deadline_s=30,
            what="visibility up to date",
        )
    except AssertionError:
        return await listing()  # the checks below say what is wrong with it


async def input_signals(temporal: Client, run_id: str) -> int:
    """How many `provide_input` signals the run received (a retried answer may arrive twice)."""
    history = await temporal.get_workflow_handle(run_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
        and event.workflow_execution_signaled_event_attributes.signal_name == "provide_input"
    )


@dataclass
class ScaleReport:
    runs: int
    questions: int
    workers: int
    gateways: int
    killed: list[str]
    in_flight_at_kill: int
    unanswered_at_kill: int
    lost: list[str]
    duplicated: list[str]
    not_completed: list[str]
    wrong: list[str]
    answers_twice: list[str]
    answers_resent: int
    failovers: dict[str, int]
    load_s: float
    wall_s: float
    replay_failures: list[str]

    @property
    def ok(self) -> bool:
        problems = (
            self.lost,
            self.duplicated,
            self.not_completed,
            self.wrong,
            self.answers_twice,
            self.replay_failures,
        )
        return not any(problems)

    def summary(self) -> str:
        kills = (
            f"kills={len(self.killed)} ({', '.join(self.killed)}: SIGKILL, not restarted) with "
            f"{self.in_flight_at_kill} runs in flight ({self.unanswered_at_kill} of them "
            "waiting for their answer)"
            if self.killed
            else "kills=0"
        )
        return (
            f"scale-out: runs={self.runs} (waiting for input: {self.questions}) "
            f"workers={self.workers} gateways={self.gateways} {kills} "
            f"lost={len(self.lost)} duplicated={len(self.duplicated)} "
            f"not_completed={len(self.not_completed)} wrong={len(self.wrong)} "
            f"answers_applied_twice={len(self.answers_twice)} "
            f"answers_resent={self.answers_resent} failovers={self.failovers} "
            f"load={self.load_s:.1f}s ({self.runs / self.load_s:.1f} runs/s) "
            f"wall={self.wall_s:.1f}s"
        )

    def details(self) -> str:
        lines = []
        for name in ("lost", "duplicated", "not_completed", "wrong", "answers_twice"):
            lines += [f"  {name}: {problem}" for problem in getattr(self, name)[:10]]
        lines += [f"  replay failure: {line}" for line in self.replay_failures[:10]]
        return "\n".join(lines)


async def run_scale_out(
    folder: Path, runs: int, workers: int, gateways: int, kill_one_of_each: bool
) -> tuple[ScaleReport, Cluster]:
    """The load, the kills, the checks; the cluster is stopped on return (its processes' exit
    codes stay readable)."""
    began = time.monotonic()
    cluster = Cluster(folder, workers=workers, gateways=gateways)
    await asyncio.to_thread(cluster.start_all)
    task_queue = cluster.env["DURABLE_AGENT_TASK_QUEUE"]
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in cluster.base_urls]
    try:
        temporal = await connect(
            Settings(temporal_address=cluster.env["DURABLE_AGENT_TEMPORAL_ADDRESS"])
        )
        plans = make_runs(runs, random.Random(runs))
        load = Load(cluster, Gateways(clients), temporal, plans)
        started = time.monotonic()
        slots = asyncio.Semaphore(IN_FLIGHT)
        all_done = asyncio.Event()
        background = [asyncio.create_task(load.person(all_done))]
        if kill_one_of_each:
            background.append(asyncio.create_task(load.kill_one_of_each()))

        async def everything() -> None:
            await asyncio.gather(*(load.one(run, slots) for run in plans))
            all_done.set()
            await asyncio.gather(*background)

        work = asyncio.create_task(everything())
        await asyncio.wait([work], timeout=DEADLINE_S)
        for task in (work, *background):
            task.cancel()  # past the deadline: what did not finish is reported below
        load_s = time.monotonic() - started

        ours = {run.run_id for run in plans if run.run_id}
        executions = await list_executions(temporal, task_queue, len(ours))
        per_id = Counter(run_id for run_id, _ in executions)
        lost = [f"{r.key}: {r.problem}" for r in plans if r.run_id not in per_id]
        duplicated = [f"{i} x{n}" for i, n in per_id.items() if n > 1]
        # A start repeated under another id (a retry that did not find its first attempt).
        duplicated += [f"{i}: not one of ours" for i in sorted(set(per_id) - ours)]
        not_completed = [
            f"{run_id}: {status}"
            for run_id, status in executions
            if status != WorkflowExecutionStatus.COMPLETED
        ]
        wrong: list[str] = []
        answers_twice: list[str] = []
        resent = 0
        for run in plans:
            if run.state is None:
                if run.run_id in per_id:
                    wrong.append(f"{run.key}: {run.problem or 'no result by the deadline'}")
                continue
            state = run.state
            if run.expect not in (state.answer or ""):
                wrong.append(f"{run.key}: answer {state.answer!r} lacks {run.expect!r}")
            taken = sum(1 for e in state.events if e.message.endswith("input received"))
            expected = 1 if run.answer else 0
            if len(state.inputs_taken) != expected or taken != expected:
                answers_twice.append(
                    f"{run.key}: inputs_taken={state.inputs_taken} input events={taken}"
                )
            if run.answer and run.run_id:
                resent += await input_signals(temporal, run.run_id) - 1
        return (
            ScaleReport(
                runs=runs,
                questions=sum(1 for run in plans if run.answer),
                workers=workers,
                gateways=gateways,
                killed=list(load.killed),
                in_flight_at_kill=load.in_flight_at_kill,
                unanswered_at_kill=load.unanswered_at_kill,
                lost=lost,
                duplicated=duplicated,
                not_completed=not_completed,
                wrong=wrong,
                answers_twice=answers_twice,
                answers_resent=resent,
                failovers=dict(load.gateways.failovers),
                load_s=load_s,
                wall_s=time.monotonic() - began,
                replay_failures=cluster.replay_failures(),
            ),
            cluster,
        )
    finally:
        for client in clients:
            await client.aclose()
        await asyncio.to_thread(cluster.stop_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--kill", action="store_true", help="SIGKILL one worker and one gateway")
    args = parser.parse_args()
    if args.kill and (args.workers < 2 or args.gateways < 2):
        parser.error("--kill needs at least 2 workers and 2 gateways (one of each survives)")
    folder = Path(tempfile.mkdtemp(prefix="scale-"))
    report, _ = asyncio.run(
        run_scale_out(folder, args.runs, args.workers, args.gateways, args.kill)
    )
    sys.stdout.write(f"{report.summary()}\n{report.details()}\n")
    if report.ok:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        sys.stdout.write(f"logs and database kept in {folder}\n")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
