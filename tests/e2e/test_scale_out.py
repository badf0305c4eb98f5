"""Scale-out, proven: two workers and two gateways on one task queue against one dev server,
under load (200 agent runs, about two in five waiting for a person's answer), with one worker
and one gateway SIGKILLed mid-load and left dead.

There is no load balancer: clients alternate between the gateways (run i starts through
gateway i % 2 and is answered through the other), and a request the dead gateway cannot serve
is sent, unchanged (same Idempotency-Key), to the other. Then Temporal itself is asked: one
completed execution per run id and no other execution on the task queue (nothing lost, nothing
started twice), and each run's final state holds its answer, taken once (`inputs_taken`).

The processes are the chaos suite's (tests/chaos/driver.py: `Cluster`); the figures are printed
for docs/deploy.md's sizing table.
"""

from __future__ import annotations

import asyncio
import random
import sys
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

RUNS = 200
# Runs in flight at once (started, not completed): the load the two workers carry.
IN_FLIGHT = 60
# The kills come once this share of the runs has completed: before, during and after them,
# runs are being started, answered and completed.
KILL_AFTER = RUNS // 3
# A bound on the whole load, so a hang fails instead of blocking the suite (not a timing check).
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
                    run.index % 2,
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
                if self.completed >= KILL_AFTER:
                    self.kill_now.set()

    async def person(self, done: asyncio.Event) -> None:
        """Answers every run that waits, as soon as the list of waiting runs (Temporal's
        visibility, through either gateway) shows it: one poll for all, not one per run."""
        poll = 0
        pending: set[asyncio.Task[None]] = set()
        while not done.is_set():
            poll += 1
            response = await self.gateways.request(
                poll % 2,
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
            (run.index + 1) % 2,
            "POST",
            f"/api/v1/runs/{run.run_id}/input",
            json={"text": run.answer},
            headers={"Idempotency-Key": f"answer-{run.key}"},
        )
        if response.status_code != 200:
            run.problem = f"answer: {response.status_code} {response.text[:200]}"

    async def kill_one_of_each(self) -> None:
        """SIGKILL worker 0 and gateway 0 once a third of the runs have completed; they stay
        dead, so the other worker and gateway carry the rest."""
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


async def test_two_workers_two_gateways_lose_and_repeat_nothing_when_one_of_each_dies(
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    cluster = Cluster(tmp_path, workers=2, gateways=2)
    await asyncio.to_thread(cluster.start_all)
    task_queue = cluster.env["DURABLE_AGENT_TASK_QUEUE"]
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in cluster.base_urls]
    try:
        temporal = await connect(
            Settings(temporal_address=cluster.env["DURABLE_AGENT_TEMPORAL_ADDRESS"])
        )
        runs = make_runs(RUNS, random.Random(RUNS))
        load = Load(cluster, Gateways(clients), temporal, runs)
        started = time.monotonic()
        slots = asyncio.Semaphore(IN_FLIGHT)
        all_done = asyncio.Event()
        killer = asyncio.create_task(load.kill_one_of_each())
        person = asyncio.create_task(load.person(all_done))

        async def everything() -> None:
            await asyncio.gather(*(load.one(run, slots) for run in runs))
            all_done.set()
            await asyncio.gather(person, killer)

        await asyncio.wait_for(everything(), DEADLINE_S)
        load_s = time.monotonic() - started

        ours = {run.run_id for run in runs if run.run_id}
        executions = await list_executions(temporal, task_queue, len(ours))
        per_id = Counter(run_id for run_id, _ in executions)
        lost = [r for r in runs if r.run_id is None or r.run_id not in per_id]
        duplicated = [f"{i} x{n}" for i, n in per_id.items() if n > 1]
        strangers = sorted(set(per_id) - ours)  # a start repeated under another id
        not_completed = [
            f"{run_id}: {status}"
            for run_id, status in executions
            if status != WorkflowExecutionStatus.COMPLETED
        ]
        wrong, answers_twice, resent = [], [], 0
        for run in runs:
            if run.problem:
                wrong.append(f"{run.key}: {run.problem}")
                continue
            state = run.state
            assert state is not None
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

        questions = sum(1 for run in runs if run.answer)
        summary = (
            f"scale-out: runs={RUNS} (waiting for input: {questions}) workers=2 gateways=2 "
            f"kills={len(load.killed)} (1 worker, 1 gateway, SIGKILL, not restarted) with "
            f"{load.in_flight_at_kill} runs in flight ({load.unanswered_at_kill} of them "
            f"waiting for their answer) "
            f"lost={len(lost)} duplicated={len(duplicated) + len(strangers)} "
            f"not_completed={len(not_completed)} wrong={len(wrong)} "
            f"answers_applied_twice={len(answers_twice)} answers_resent={resent} "
            f"failovers={dict(load.gateways.failovers)} load={load_s:.1f}s "
            f"({RUNS / load_s:.1f} runs/s) wall={time.monotonic() - began:.1f}s"
        )
        sys.stdout.write(f"\n{summary}\n")
        assert set(load.killed) == {"worker", "gateway"}, summary
        assert load.in_flight_at_kill > 0, summary
        assert cluster.workers[0] is not None and cluster.workers[0].returncode == -9
        assert cluster.gateways[0] is not None and cluster.gateways[0].returncode == -9
        assert not lost, f"{summary}\nlost: {[r.key for r in lost][:10]}"
        assert not duplicated and not strangers, f"{summary}\n{duplicated[:10]} {strangers[:10]}"
        assert not not_completed, f"{summary}\n{not_completed[:10]}"
        assert not wrong, f"{summary}\n" + "\n".join(wrong[:10])
        assert not answers_twice, f"{summary}\n" + "\n".join(answers_twice[:10])
        # The load really went through the kills: clients met the dead gateway and moved on.
        assert sum(load.gateways.failovers.values()) > 0, summary
        assert not cluster.replay_failures(), cluster.replay_failures()
    finally:
        for client in clients:
            await client.aclose()
        await asyncio.to_thread(cluster.stop_all)
