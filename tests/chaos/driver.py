"""The chaos driver: start runs of every kind, SIGKILL our processes and the Temporal server at
random moments, restart them, and check that no run lost, repeated or garbled anything.

    python -m tests.chaos.driver --runs 500 --seed 7        # or: make chaos N=500

Everything is real: a dev server on a file database, two worker processes, a gateway process,
clients over HTTP and SSE. The schedule of runs, kills and answers is drawn from the seed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from config import PROJECT_ROOT
from devstack.processes import (
    dev_server_command,
    free_port,
    kill,
    port_open,
    start,
    stop,
    wait_until,
)
from tests.helpers import eventually

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Lima", "Perth", "Tartu"]

CHAOS_GRAPH: dict[str, Any] = {
    "name": "chaos_graph",
    "entry": "note",
    "nodes": [
        {
            "id": "note",
            "type": "tool",
            "config": {"tool": "append_note", "args": {"text": '"token " + input.token'}},
        },
        {
            "id": "work",
            "type": "tool",
            "config": {"tool": "wait", "args": {"seconds": "input.seconds"}},
        },
        {
            "id": "approve",
            "type": "human_input",
            "config": {"question": "Approve {{ input.token }}?"},
        },
        {
            "id": "done",
            "type": "transform",
            "config": {
                "set": {"answer": '"approved " + input.token + " by " + approve.value.text'}
            },
        },
    ],
    "edges": [
        {"source": "note", "target": "work"},
        {"source": "work", "target": "approve"},
        {"source": "approve", "target": "done"},
    ],
}

LONG_GRAPH: dict[str, Any] = {
    "name": "long_work",
    "entry": "work",
    "nodes": [
        {
            "id": "work",
            "type": "tool",
            "config": {"tool": "wait", "args": {"seconds": "input.seconds"}},
        },
        {"id": "fin", "type": "transform", "config": {"set": {"answer": '"finished"'}}},
    ],
    "edges": [{"source": "work", "target": "fin"}],
}

# Fast mode: the same work as local activities. A worker killed mid-`wait` loses the attempt;
# the worker that replays the run redoes it from its start, and the run still ends once.
FAST_LONG_GRAPH: dict[str, Any] = {**LONG_GRAPH, "name": "long_work_fast", "execution": "local"}
FAST_AGENT: dict[str, Any] = {"name": "fast", "execution": "local"}


# Lines a worker logs when it cannot replay a run it holds: the run then answers no query on
# that worker (the SDK core's nondeterminism error, and a cache eviction that cannot finish).
REPLAY_FAILURE_SIGNS = (
    "Nondeterminism(",
    "Failed running eviction job",
    "Timed out running eviction",
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# How long one run may take to be followed to its result, or to take its answer, through the
# chaos (the whole suite has its own, shorter deadline).
FOLLOW_DEADLINE_S = 600


@dataclass
class Plan:
    key: str
    kind: str
    body: dict[str, Any]
    expect: str  # a substring of the answer (agent) or the exact output (graph)
    answer_input: str | None = None
    token: str | None = None
    run_id: str | None = None
    events: list[tuple[int, str, str, float]] = field(default_factory=list)
    input_sent_at: float | None = None
    approval_sent_at: float | None = None
    approved: set[str] = field(default_factory=set)


def make_plans(n: int, rng: random.Random) -> list[Plan]:
    plans = []
    for i in range(n):
        kind = rng.choice(
            ["chat", "calc", "question", "graph_human", "long", "fast_calc", "fast_long"]
        )
        key = f"chaos-{i}-{uuid.uuid4().hex[:8]}"
        if kind == "chat":
            plans.append(Plan(key, kind, {"query": "hello"}, "Hello"))
        elif kind in ("calc", "fast_calc"):
            a, b = rng.randint(2, 999), rng.randint(2, 999)
            body = {"query": f"What is {a} * {b}?"}
            if kind == "fast_calc":
                body["agent"] = FAST_AGENT
            plans.append(Plan(key, kind, body, str(a * b)))
        elif kind == "question":
            city, days = rng.choice(CITIES), rng.randint(2, 9)
            text = f"{days} days in {city}"
            plans.append(Plan(key, kind, {"query": f"Plan my trip to {city}"}, text, text))
        elif kind == "graph_human":
            token, text = uuid.uuid4().hex[:10], rng.choice(["ana", "bo", "cy"])
            body = {"graph": CHAOS_GRAPH, "input": {"token": token, "seconds": rng.uniform(1, 3)}}
            plans.append(Plan(key, kind, body, f"approved {token} by {text}", text, token))
        else:
            graph = FAST_LONG_GRAPH if kind == "fast_long" else LONG_GRAPH
            body = {"graph": graph, "input": {"seconds": rng.uniform(3, 6)}}
            plans.append(Plan(key, kind, body, "finished"))
    return plans


class Cluster:
    """Our processes and the Temporal server, each killable and restartable: `workers` worker
    processes and `gateways` gateway processes on one task queue (tests/e2e/test_scale_out.py
    runs two of each; the chaos suite one gateway)."""

    def __init__(self, folder: Path, workers: int = 2, gateways: int = 1) -> None:
        self.folder = folder
        self.port = free_port()
        self.http_ports = [free_port() for _ in range(gateways)]
        self.base_urls = [f"http://127.0.0.1:{port}" for port in self.http_ports]
        self.base_url = self.base_urls[0]
        self.notes = folder / "notes.txt"
        self.env = {
            "DURABLE_AGENT_TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
            "DURABLE_AGENT_TASK_QUEUE": f"chaos-{uuid.uuid4().hex}",
            "DURABLE_AGENT_NOTES_FILE": str(self.notes),
            # Every gateway must derive the same run id from an Idempotency-Key (docs/deploy.md).
            "DURABLE_AGENT_SECRET_KEY": uuid.uuid4().hex,
        }
        self.server: Popen[bytes] | None = None
        self.workers: list[Popen[bytes] | None] = [None] * workers
        self.gateways: list[Popen[bytes] | None] = [None] * gateways
        self.logs = 0

    def _log(self, name: str) -> Path:
        self.logs += 1
        return self.folder / f"{self.logs:03d}-{name}.log"

    def start_server(self) -> None:
        cmd = dev_server_command(self.folder / "temporal.db", "127.0.0.1", self.port, None)
        self.server = start(cmd, log=self._log("temporal"))
        wait_until(
            lambda: port_open("127.0.0.1", self.port),
            timeout=30,
            what="dev server",
            proc=self.server,
        )

    def start_worker(self, index: int) -> None:
        self.workers[index] = start(
            [sys.executable, "worker.py"],
            env=self.env,
            log=self._log(f"worker{index}"),
            cwd=PROJECT_ROOT,
        )

    def start_gateway(self, index: int = 0) -> None:
        port = self.http_ports[index]
        gateway = start(
            [
                sys.executable,
                "-m",
                "app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            log=self._log(f"gateway{index}"),
            cwd=PROJECT_ROOT,
        )
        self.gateways[index] = gateway
        wait_until(lambda: port_open("127.0.0.1", port), timeout=60, what="gateway", proc=gateway)

    def start_all(self) -> None:
        self.start_server()
        for i in range(len(self.workers)):
            self.start_worker(i)
        for i in range(len(self.gateways)):
            self.start_gateway(i)

    def stop_all(self) -> None:
        for proc in [*self.gateways, *self.workers, self.server]:
            if proc is not None:
                stop(proc)

    def replay_failures(self) -> list[str]:
        """What the workers logged about runs they could not replay (docs/durability.md: a
        worker stuck on one run's replay). A run can complete on one worker and still be
        unreadable on another, so the workers' own word is checked, not only the runs'."""
        found = []
        for log in sorted(self.folder.glob("*-worker*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if any(sign in line for sign in REPLAY_FAILURE_SIGNS):
                    found.append(f"{log.name}: {ANSI.sub('', line)[-300:]}")
        return found


@dataclass
class Report:
    runs: int
    kills: dict[str, int]
    lost: list[str]
    duplicated: list[str]
    wrong: list[str]
    stalls: dict[str, list[float]]
    seconds: float
    # Runs a worker could not replay (it logged why), and completed runs (Temporal's
    # visibility says so) whose state no worker would answer: docs/durability.md, "a worker
    # stuck on one run's replay". None is tolerated.
    stuck: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong or self.stuck)

    def summary(self) -> str:
        every = [s for values in self.stalls.values() for s in values]
        p95 = _pct(every, 95)
        return (
            f"chaos: runs={self.runs} kills={sum(self.kills.values())} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} wrong={len(self.wrong)} "
            f"recovered_p95={p95:.1f}s stuck={len(self.stuck)}"
        )

    def details(self) -> str:
        lines = [f"  kills by kind: {self.kills}; suite {self.seconds:.0f}s"]
        for kind, values in self.stalls.items():
            if values:
                lines.append(
                    f"  stall after {kind} kill: p50 {_pct(values, 50):.1f}s "
                    f"p95 {_pct(values, 95):.1f}s over {len(values)} runs in flight"
                )
        for name in ("lost", "duplicated", "wrong", "stuck"):
            for problem in getattr(self, name)[:10]:
                lines.append(f"  {name}: {problem}")
        return "\n".join(lines)


def _pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class Driver:
    def __init__(self, cluster: Cluster, plans: list[Plan], rng: random.Random) -> None:
        self.cluster = cluster
        self.plans = plans
        self.rng = rng
        # Longer than the gateway's query timeout, so its own 503 usually arrives first; a
        # request that outlives this is retried like any other, with its Idempotency-Key.
        self.http = httpx.AsyncClient(base_url=cluster.base_url, timeout=httpx.Timeout(30))

    async def _request(
        self, method: str, path: str, deadline_s: float = 180, **kwargs: Any
    ) -> httpx.Response:
        """Retry through outages: connection errors and 503 mean 'try again' (until a deadline:
        a run that stays unanswerable is a finding, not a reason to hang)."""
        try:
            return await eventually(
                lambda: self.http.request(method, path, **kwargs),
                lambda response: response.status_code != 503,
                deadline_s=deadline_s,
                interval=0.2,
                what=f"{method} {path} answered",
            )
        except AssertionError as exc:  # callers tell an unanswerable run by TimeoutError
            raise TimeoutError(str(exc)[:500]) from None

    async def start_run(self, plan: Plan) -> None:
        # The Idempotency-Key makes a retried start (the gateway died mid-request) safe.
        response = await self._request(
            "POST", "/api/v1/runs", json=plan.body, headers={"Idempotency-Key": plan.key}
        )
        assert response.status_code in (200, 201), response.text
        plan.run_id = response.json()["run_id"]

    async def follow(self, plan: Plan) -> None:
        """Read the run's events to its result, reconnecting with Last-Event-ID."""
        await eventually(
            lambda: self._follow_once(plan),
            deadline_s=FOLLOW_DEADLINE_S,
            interval=0.2,
            what=f"the result of {plan.key}",
        )

    async def _follow_once(self, plan: Plan) -> bool:
        """One connection: True once the run's result event arrived (a dropped connection, a
        killed gateway: False, and the caller reconnects)."""
        timeout = httpx.Timeout(10, read=60)
        headers = {}
        if plan.events:
            headers["Last-Event-ID"] = str(plan.events[-1][0])
        try:
            async with aconnect_sse(
                self.http,
                "GET",
                f"/api/v1/runs/{plan.run_id}/events",
                headers=headers,
                timeout=timeout,
            ) as source:
                if source.response.status_code == 200:
                    async for sse in source.aiter_sse():
                        if not sse.data or not sse.id:
                            # An event cut off by a killed gateway: the SSE spec discards
                            # incomplete events (httpx-sse hands them over at EOF).
                            continue
                        event = json.loads(sse.data)
                        plan.events.append((int(sse.id), event["type"], sse.data, time.time()))
                        if event["type"] == "question" and plan.answer_input:
                            asyncio.get_running_loop().create_task(self.answer(plan))
                        data = event["data"]
                        if event["type"] == "approval" and data.get("status") == "pending":
                            approval_id = data["approval_id"]
                            asyncio.get_running_loop().create_task(self.approve(plan, approval_id))
                        if event["type"] == "result":
                            return True
        except (httpx.TransportError, httpx.RemoteProtocolError):
            pass
        return False

    async def answer(self, plan: Plan) -> None:
        if plan.input_sent_at is not None:
            return
        plan.input_sent_at = time.time()
        # Workload, not synchronisation: the person answers after a random think time, so that
        # the run waits through some of the chaos.
        await asyncio.sleep(self.rng.uniform(0, 4))
        # The same Idempotency-Key on every attempt: a retry gets what the first did. 409: the
        # run is no longer waiting, so an earlier attempt landed (a run that continued as new
        # does not know the update id of an input it already took).
        await eventually(
            lambda: self._request(
                "POST",
                f"/api/v1/runs/{plan.run_id}/input",
                json={"text": plan.answer_input},
                headers={"Idempotency-Key": f"answer-{plan.key}"},
            ),
            lambda response: response.status_code in (200, 409),
            deadline_s=FOLLOW_DEADLINE_S,
            interval=0.2,
            what=f"the answer to {plan.key} taken",
        )

    async def approve(self, plan: Plan, approval_id: str) -> None:
        """The person approves the held tool call (append_note's policy), once."""
        if approval_id in plan.approved:
            return
        plan.approved.add(approval_id)
        plan.approval_sent_at = plan.approval_sent_at or time.time()
        # Workload, not synchronisation: the person decides after a random think time.
        await asyncio.sleep(self.rng.uniform(0, 2))
        # 409: already decided, so an earlier attempt (cut off by a kill) landed.
        await eventually(
            lambda: self._request(
                "POST",
                f"/api/v1/runs/{plan.run_id}/approvals/{approval_id}",
                json={"approve": True},
            ),
            lambda response: response.status_code in (200, 409),
            deadline_s=FOLLOW_DEADLINE_S,
            interval=0.2,
            what=f"the approval of {plan.key} taken",
        )

    async def chaos(
        self, kills_per_kind: int, window: float
    ) -> tuple[dict[str, int], list[tuple[str, float]]]:
        schedule = sorted(
            (self.rng.uniform(1.0, window), kind)
            for kind in ("worker", "gateway", "server")
            for _ in range(kills_per_kind)
        )
        began = time.monotonic()
        done: list[tuple[str, float]] = []
        counts = {"worker": 0, "gateway": 0, "server": 0}
        for at, kind in schedule:
            # Workload, not synchronisation: each kill happens at its scheduled moment.
            await asyncio.sleep(max(0.0, at - (time.monotonic() - began)))
            await asyncio.to_thread(self._kill_and_restart, kind, done)
            counts[kind] += 1
        return counts, done

    def _kill_and_restart(self, kind: str, done: list[tuple[str, float]]) -> None:
        c = self.cluster
        if kind == "worker":
            index = self.rng.randrange(len(c.workers))
            proc = c.workers[index]
            assert proc is not None
            kill(proc)
            done.append((kind, time.time()))
            # Workload, not synchronisation: the worker stays down a while before it is back.
            time.sleep(self.rng.uniform(0.5, 2.0))
            c.start_worker(index)
        elif kind == "gateway":
            gateway = c.gateways[0]
            assert gateway is not None
            kill(gateway)
            done.append((kind, time.time()))
            c.start_gateway()
        else:
            assert c.server is not None
            kill(c.server)
            done.append((kind, time.time()))
            # Workload, not synchronisation: the server stays down a while before it is back.
            time.sleep(self.rng.uniform(0.5, 1.5))
            c.start_server()

    async def verify(self, plan: Plan) -> tuple[str | None, str | None, str | None]:
        """(lost, duplicated, wrong) problems of one run, or None each."""
        if plan.run_id is None:
            return f"{plan.key} ({plan.kind}) was never started", None, None
        try:
            return await self._verify(plan)
        except TimeoutError as exc:
            return f"{plan.key} ({plan.kind}) {plan.run_id} UNANSWERABLE: {exc}", None, None

    async def completed_in_visibility(self, run_id: str) -> bool:
        token = None
        for _ in range(50):
            params: dict[str, Any] = {"status": "completed", "page_size": 100}
            if token:
                params["page_token"] = token
            page = (await self._request("GET", "/api/v1/runs", deadline_s=30, params=params)).json()
            if run_id in {r["run_id"] for r in page["runs"]}:
                return True
            token = page.get("next_page_token")
            if not token:
                return False
        return False

    async def _verify(self, plan: Plan) -> tuple[str | None, str | None, str | None]:
        state = (await self._request("GET", f"/api/v1/runs/{plan.run_id}", deadline_s=60)).json()
        if state.get("status") != "completed":
            return (
                f"{plan.key} ({plan.kind}) ended {state.get('status')}: {state.get('errors')}",
                None,
                None,
            )
        full = [_identity(e) for e in await read_all(self.cluster.base_url, plan.run_id or "")]
        seen = [_identity((i, t, d)) for i, t, d, _ in plan.events]
        if seen != full:
            ids = [i for i, _, _ in seen]
            kind = "duplicated" if len(ids) != len(set(ids)) else "lost"
            message = f"{plan.key} SSE client saw {len(seen)} events, stream has {len(full)}"
            diff = next(((a, b) for a, b in zip(seen, full, strict=False) if a != b), None)
            if diff:
                message += f"; first difference: client {diff[0]} vs stream {diff[1]}"
            return (message, None, None) if kind == "lost" else (None, message, None)
        wrong = None
        if plan.kind in ("chat", "calc", "question", "fast_calc"):
            if plan.expect not in (state.get("answer") or ""):
                wrong = f"{plan.key}: answer {state.get('answer')!r} lacks {plan.expect!r}"
            if plan.answer_input and state.get("events") is not None:
                inputs = [e for e in state["events"] if e["message"] == "running: input received"]
                if len(inputs) != 1:
                    return None, f"{plan.key}: input applied {len(inputs)} times", None
        else:
            outputs = state.get("outputs") or {}
            sink = "done" if plan.kind == "graph_human" else "fin"
            got = (outputs.get(sink) or {}).get("value", {}).get("answer")
            if got != plan.expect:
                wrong = f"{plan.key}: output {got!r}, expected {plan.expect!r}"
            if plan.kind == "graph_human":
                runs = {n["id"]: n["runs"] for n in state["nodes"]}
                if runs["approve"] != 1:
                    return None, f"{plan.key}: human input asked {runs['approve']} times", None
                notes = self.cluster.notes.read_text() if self.cluster.notes.exists() else ""
                written = sum(1 for line in notes.splitlines() if plan.token and plan.token in line)
                if written != 1:
                    return None, f"{plan.key}: side effect applied {written} times", None
        return None, None, wrong


def _identity(event: tuple[int, str, str]) -> tuple[int, str, str]:
    """An event without its `at` stamp. A client can read an event produced by a workflow task
    that a crash then lost; the retried task produces the same event (same offset, type and
    data: the workflow is deterministic and its inputs are in history) stamped a little later."""
    offset, kind, data = event
    body = json.loads(data)
    body.pop("at", None)
    return offset, kind, json.dumps(body, sort_keys=True)


async def read_all(
    base_url: str, run_id: str, deadline_s: float = 60
) -> list[tuple[int, str, str]]:
    """The run's whole stream, read afresh (retrying while the gateway answers 503)."""
    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        events = []
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30)) as http,
            aconnect_sse(http, "GET", f"/api/v1/runs/{run_id}/events") as source,
        ):
            if source.response.status_code != 200:
                last = (await source.response.aread()).decode()[:300]
                await asyncio.sleep(0.5)
                continue
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue
                events.append((int(sse.id), json.loads(sse.data)["type"], sse.data))
                if json.loads(sse.data)["type"] == "result":
                    return events
    raise TimeoutError(f"GET /api/v1/runs/{run_id}/events: {last}")


def _stalls(plans: list[Plan], kills: list[tuple[str, float]]) -> dict[str, list[float]]:
    """Per kill: for each run in flight (started, not finished, not waiting for a person), the
    time from the kill to the run's next event at its client."""
    stalls: dict[str, list[float]] = {"worker": [], "gateway": [], "server": []}
    for kind, at in kills:
        for plan in plans:
            before = [e for e in plan.events if e[3] < at]
            after = [e for e in plan.events if e[3] >= at]
            if not before or not after or before[-1][1] == "result":
                continue
            last_status = next(
                (
                    json.loads(e[2])["data"].get("status")
                    for e in reversed(before)
                    if e[1] == "status"
                ),
                None,
            )
            waiting_person = (
                last_status == "waiting_for_input"
                and (plan.input_sent_at is None or plan.input_sent_at > at)
            ) or (
                last_status == "waiting_for_approval"
                and (plan.approval_sent_at is None or plan.approval_sent_at > at)
            )
            if waiting_person:
                continue
            stalls[kind].append(after[0][3] - at)
    return stalls


async def run_chaos(
    runs: int,
    seed: int,
    kills_per_kind: int,
    folder: Path,
    deadline_s: float = 600,
    window: float | None = None,
) -> Report:
    rng = random.Random(seed)
    cluster = Cluster(folder)
    began = time.monotonic()
    await asyncio.to_thread(cluster.start_all)
    driver = Driver(cluster, make_plans(runs, rng), rng)
    try:
        window = window or max(10.0, min(60.0, runs * 0.3))
        chaos = asyncio.create_task(driver.chaos(kills_per_kind, window))
        semaphore = asyncio.Semaphore(50)

        async def one(plan: Plan) -> None:
            async with semaphore:
                await asyncio.sleep(rng.uniform(0, window * 0.6))
                await driver.start_run(plan)
                await driver.follow(plan)

        tasks = [asyncio.create_task(one(p)) for p in driver.plans]
        _, pending = await asyncio.wait([*tasks, chaos], timeout=deadline_s)
        for task in pending:
            task.cancel()
        counts, kills = chaos.result() if chaos.done() else ({}, [])
        lost: list[str] = []
        duplicated: list[str] = []
        wrong: list[str] = []
        stuck: list[str] = []
        for plan in driver.plans:
            problems = await driver.verify(plan)
            for bucket, problem in zip((lost, duplicated, wrong), problems, strict=True):
                if problem:
                    bucket.append(problem)
            if problems[0] and "UNANSWERABLE" in problems[0] and plan.run_id:
                if await driver.completed_in_visibility(plan.run_id):
                    stuck.append(lost.pop())
        stuck.extend(cluster.replay_failures())
        return Report(
            runs,
            counts,
            lost,
            duplicated,
            wrong,
            _stalls(driver.plans, kills),
            time.monotonic() - began,
            stuck,
        )
    finally:
        await driver.http.aclose()
        await asyncio.to_thread(cluster.stop_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kills", type=int, default=5, help="kills of each kind")
    parser.add_argument("--window", type=float, default=None, help="seconds over which to kill")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    report = asyncio.run(
        run_chaos(args.runs, seed, args.kills, folder, deadline_s=1800, window=args.window)
    )
    sys.stdout.write(f"{report.summary()} seed={seed}\n{report.details()}\n")
    if report.ok:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        sys.stdout.write(f"logs and database kept in {folder}\n")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
