"""Scenarios 5, 6 and 7: what the gateway adds over calling Temporal directly.

    python -m bench.gateway_latency [--rounds 3] [--runs 40]

- Start: `POST /api/v1/runs` (an inline graph whose first node waits for input, so a started
  run costs the worker one task) against `client.start_workflow` with the same input, one
  after the other, alternating: p50 of `--runs` each per round.
- A completed run (agent runs, "What is 17 * 23?"): `GET /api/v1/runs/{id}`, 5 x `--runs`
  requests 10 at a time (req/s) and `--runs` one at a time (p50), against the SDK's own read of
  a finished run, `handle.result()`, measured the same way.
- A waiting run: `GET /api/v1/runs/{id}` against the `get_state` query sent directly,
  alternating, p50 of `--runs` each per round; the ratio is query p50 / GET p50 (1.0: the
  gateway adds nothing).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from bench import durable, harness
from bench.harness import Row
from bench.stack import bench_stack
from bench.waiting_memory import until_waiting

COMMAND = "python -m bench.gateway_latency --rounds 3 --runs 40"
READERS = 10
COMPLETED = 20


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def alternating(calls: Sequence[Callable[[int], Awaitable[Any]]], count: int) -> list[float]:
    """p50 (ms) of each call, `count` times each, taking turns."""
    times: list[list[float]] = [[] for _ in calls]
    for i in range(count):
        for k, call in enumerate(calls):
            times[k].append(await timed(lambda call=call, i=i: call(i)))
    return [statistics.median(t) for t in times]


async def rate(call: Callable[[int], Awaitable[Any]], count: int) -> float:
    """Requests per second, READERS at a time."""
    gate = asyncio.Semaphore(READERS)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


def ok(response: httpx.Response) -> httpx.Response:
    response.raise_for_status()
    return response


async def scenario(rounds: int, runs: int | None) -> list[Row]:
    runs = runs or 40
    start = Row(
        key="start_latency",
        scenario="start a run: POST /runs p50 vs direct start_workflow p50",
        unit="ms",
        goal="≤ 1.15×",
        command=COMMAND,
        baselines=["direct start_workflow"],
        ours=["POST /runs"],
        ratios=[("POST/direct", "POST /runs", "direct start_workflow")],
    )
    done_rate = Row(
        key="completed_read_rate",
        scenario=f"GET a completed run: req/s ({READERS} at a time)",
        unit="req/s",
        goal="≥ 410 req/s (10× the 41 measured when the issue was filed)",
        command=COMMAND,
        baselines=["direct handle.result()"],
        ours=["GET /runs/{id}"],
        ratios=[("GET/direct", "GET /runs/{id}", "direct handle.result()")],
    )
    done_p50 = Row(
        key="completed_read_p50",
        scenario="GET a completed run: p50",
        unit="ms",
        goal="≤ 44 ms (10× quicker than the 444 ms measured when the issue was filed)",
        command=COMMAND,
        baselines=["direct handle.result()"],
        ours=["GET /runs/{id}"],
        ratios=[("GET/direct", "GET /runs/{id}", "direct handle.result()")],
    )
    waiting = Row(
        key="waiting_read",
        scenario="GET a waiting run vs a direct query (p50)",
        unit="ms",
        goal="query/GET ≥ 0.8×",
        command=COMMAND,
        baselines=["direct query"],
        ours=["GET /runs/{id}"],
        ratios=[("query/GET", "direct query", "GET /runs/{id}")],
    )
    with bench_stack() as stack:
        client, settings = await durable.connect_ours(stack.temporal_address, stack.task_queue)
        waiter = durable.spec_of(durable.WAITER)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:

            async def post(_: int) -> None:
                body = {"graph": durable.WAITER, "input": {}}
                ok(await http.post("/api/v1/runs", json=body))

            async def direct_start(_: int) -> None:
                await durable.start_graph(client, settings, waiter)

            # Runs to read: completed agent runs, and waiting graph runs.
            finished = [await durable.start_agent(client, settings) for _ in range(COMPLETED)]
            await asyncio.gather(*(h.result() for h in finished))
            waiters = [await durable.start_graph(client, settings, waiter) for _ in range(5)]
            await asyncio.gather(*(until_waiting(h) for h in waiters))

            async def get_done(i: int) -> None:
                ok(await http.get(f"/api/v1/runs/{finished[i % COMPLETED].id}"))

            async def result_done(i: int) -> None:
                await client.get_workflow_handle(finished[i % COMPLETED].id).result()

            async def get_waiting(i: int) -> None:
                ok(await http.get(f"/api/v1/runs/{waiters[i % len(waiters)].id}"))

            async def query_waiting(i: int) -> None:
                handle = client.get_workflow_handle(waiters[i % len(waiters)].id)
                await handle.query("get_state", result_type=dict)

            await alternating([post, direct_start, get_done, result_done], 5)  # warm-up
            await alternating([get_waiting, query_waiting], 5)
            for round_ in range(rounds):
                posted, direct = await alternating(
                    harness.rotated([post, direct_start], round_), runs
                )
                if round_ % 2:
                    posted, direct = direct, posted
                start.add("POST /runs", posted)
                start.add("direct start_workflow", direct)

                for name, call in harness.rotated(
                    [("GET /runs/{id}", get_done), ("direct handle.result()", result_done)],
                    round_,
                ):
                    done_rate.add(name, await rate(call, runs * 5))
                    done_p50.add(name, (await alternating([call], runs))[0])

                pair = harness.rotated(
                    [("GET /runs/{id}", get_waiting), ("direct query", query_waiting)], round_
                )
                p50s = await alternating([call for _, call in pair], runs)
                for (name, _), p50 in zip(pair, p50s, strict=True):
                    waiting.add(name, p50)
                harness.say(f"round {round_ + 1} done")
    return [start, done_rate, done_p50, waiting]


if __name__ == "__main__":
    harness.main(scenario, __doc__, rounds=3, runs=40)
