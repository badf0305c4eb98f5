"""Scenario 8: inputs under load: `--runs` runs waiting for input (default 1,000), all answered
at once over HTTP (`POST /api/v1/runs/{id}/input`, one connection each).

    python -m bench.inputs_load [--rounds 2] [--runs 1000]

Counts the answers that are 5xx (the goal: none) and the other non-2xx ones, the latency p50
and p99 of the requests, and checks that every run then completed with the answer it was sent
(an input answered 5xx although applied shows up as a 5xx here and as a completed run).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from temporalio.client import WorkflowHandle

from bench import durable, harness
from bench.harness import Row, percentile
from bench.stack import bench_stack
from bench.waiting_memory import waiting_batch

COMMAND = "python -m bench.inputs_load --rounds 2 --runs 1000"


async def answer(http: httpx.AsyncClient, handle: WorkflowHandle[Any, Any]) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        response = await http.post(f"/api/v1/runs/{handle.id}/input", json={"text": "blue"})
        status = response.status_code
    except httpx.HTTPError:
        status = 599  # no answer at all: counted with the 5xx
    return status, (time.perf_counter() - started) * 1000


async def scenario(rounds: int, runs: int | None) -> list[Row]:
    runs = runs or 1000
    errors = Row(
        key="inputs_load_errors",
        scenario=f"inputs under load ({runs} waiting runs answered at once): 5xx answers",
        unit="answers",
        goal="0 × 5xx",
        command=COMMAND,
        ours=["5xx", "other non-2xx", "runs not completed"],
    )
    latency = Row(
        key="inputs_load_latency",
        scenario=f"inputs under load ({runs} at once): latency",
        unit="ms",
        goal="–",
        command=COMMAND,
        ours=["p50", "p99"],
    )
    with bench_stack() as stack:
        client, settings = await durable.connect_ours(stack.temporal_address, stack.task_queue)
        spec = durable.spec_of(durable.WAITER)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=120, limits=limits) as http:
            for round_ in range(rounds):
                handles = await waiting_batch(
                    lambda: durable.start_graph(client, settings, spec), runs
                )
                harness.say(f"round {round_ + 1}: {runs} runs wait")
                answers = await asyncio.gather(*(answer(http, h) for h in handles))
                statuses = [status for status, _ in answers]
                times = [ms for _, ms in answers]
                finished = await asyncio.gather(
                    *(asyncio.wait_for(h.result(), 120) for h in handles), return_exceptions=True
                )
                errors.add("5xx", sum(1 for s in statuses if s >= 500))
                errors.add(
                    "other non-2xx", sum(1 for s in statuses if not 200 <= s < 300 and s < 500)
                )
                errors.add(
                    "runs not completed", sum(1 for f in finished if isinstance(f, BaseException))
                )
                latency.add("p50", percentile(times, 50))
                latency.add("p99", percentile(times, 99))
                failed = [f for f in finished if isinstance(f, BaseException)]
                harness.say(
                    f"round {round_ + 1}: statuses {sorted(set(statuses))}"
                    + (f"; first failure: {failed[0]!r}" if failed else "")
                )
    return [errors, latency]


if __name__ == "__main__":
    harness.main(scenario, __doc__, rounds=2, runs=1000)
