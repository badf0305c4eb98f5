"""Scenario 8: inputs under load: `--runs` runs waiting for input (default 1,000), all answered
at once over HTTP (`POST /api/v1/runs/{id}/input`, one connection each).

    python -m bench.inputs_load [--rounds 2] [--runs 1000]

Counts the answers that are 5xx (the goal: none) and the other non-2xx ones, the latency p50
and p99 of the requests, and checks that every run then completed with the answer it was sent
(an input answered 5xx although applied: a 5xx whose run completed).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from temporalio.client import WorkflowHandle

from bench import durable, harness
from bench.harness import Row, percentile
from bench.stack import bench_stack
from bench.waiting_memory import waiting_batch

COMMAND = "python -m bench.inputs_load --rounds 2 --runs 1000"
SETTLE_S = 30.0


async def answer(
    http: httpx.AsyncClient, handle: WorkflowHandle[Any, Any]
) -> tuple[int, float, str]:
    started = time.perf_counter()
    try:
        response = await http.post(f"/api/v1/runs/{handle.id}/input", json={"text": "blue"})
        status, message = response.status_code, ""
        if status >= 300:
            message = str(response.json().get("error", {}).get("message", ""))[:90]
    except httpx.HTTPError as exc:
        status, message = 599, f"no answer: {type(exc).__name__}"  # counted with the 5xx
    return status, (time.perf_counter() - started) * 1000, message


async def completed(handles: list[WorkflowHandle[Any, Any]]) -> list[bool]:
    """Which runs completed within SETTLE_S of their answers (an applied input completes its run
    at once; one that was not applied leaves it waiting)."""
    tasks = [asyncio.ensure_future(h.result()) for h in handles]
    await asyncio.wait(tasks, timeout=SETTLE_S)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [t.done() and not t.cancelled() and t.exception() is None for t in tasks]


async def scenario(rounds: int, runs: int | None) -> list[Row]:
    runs = runs or 1000
    errors = Row(
        key="inputs_load_errors",
        scenario=f"inputs under load ({runs} waiting runs answered at once): 5xx answers",
        unit="answers",
        goal="0 × 5xx",
        command=COMMAND,
        ours=["5xx", "5xx although applied", "other non-2xx", "runs not completed"],
    )
    latency = Row(
        key="inputs_load_latency",
        scenario=f"inputs under load ({runs} at once): latency",
        unit="ms",
        goal="–",
        command=COMMAND,
        ours=["p50", "p99"],
    )
    messages: Counter[str] = Counter()
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
                done = await completed(handles)
                statuses = [status for status, _, _ in answers]
                messages.update(f"{s} {m}" for s, _, m in answers if s >= 300)
                errors.add("5xx", sum(1 for s in statuses if s >= 500))
                errors.add(
                    "5xx although applied",
                    sum(1 for s, ok in zip(statuses, done, strict=True) if s >= 500 and ok),
                )
                errors.add("other non-2xx", sum(1 for s in statuses if 300 <= s < 500))
                errors.add("runs not completed", done.count(False))
                times = [ms for _, ms, _ in answers]
                latency.add("p50", percentile(times, 50))
                latency.add("p99", percentile(times, 99))
                harness.say(f"round {round_ + 1}: statuses {sorted(set(statuses))}")
    if messages:
        errors.note = (
            "answers other than 2xx, over all rounds: "
            + "; ".join(f"{count} × {text.strip()!r}" for text, count in messages.most_common(3))
            + "."
        )
    errors.note += (
        f" A run not completed within {SETTLE_S:.0f} s of its answer was not given the input."
    )
    return [errors, latency]


if __name__ == "__main__":
    harness.main(scenario, __doc__, rounds=2, runs=1000)
