"""Scenario 4: worker memory (RSS) per cached run waiting for input, against a hand-written
workflow blocked on a signal.

    python -m bench.waiting_memory [--rounds 3] [--runs 300]

Each round starts both workers afresh (durable-agent's and a plain SDK worker), warms each up
with a few runs, reads its RSS (psutil), starts `--runs` runs that wait (a graph whose first
node is `human_input`; `RawWaiter`, blocked on `wait_condition` until a signal), waits until
every one of them answers a query saying it waits (so its workflow task ran and it sits in the
worker's cache), and reads the RSS again: (after - before) / runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
from temporalio.client import Client, WorkflowHandle

from bench import durable, harness
from bench.harness import Row
from bench.stack import BenchStack, bench_stack
from devstack.processes import stop

START_CONCURRENCY = 25
WARM = 10


async def until_waiting(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the run's query says it waits (its first workflow task has run)."""
    for _ in range(600):
        try:
            state = await handle.query("get_state", result_type=dict)
            if str(state.get("status", "")).startswith("waiting"):
                return
        except Exception:  # noqa: BLE001 - not started yet: try again
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{handle.id} never waited")


async def waiting_batch(
    start: Callable[[], Awaitable[WorkflowHandle[Any, Any]]], runs: int
) -> list[WorkflowHandle[Any, Any]]:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one() -> WorkflowHandle[Any, Any]:
        async with gate:
            handle = await start()
            await until_waiting(handle)
            return handle

    return list(await asyncio.gather(*(one() for _ in range(runs))))


def rss_kb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1024


async def scenario(rounds: int, runs: int | None) -> list[Row]:
    runs = runs or 300
    row = Row(
        key="waiting_memory",
        scenario=f"worker RSS per cached waiting run ({runs} waiting)",
        unit="KB",
        goal="≤ 120 KB",
        command="python -m bench.waiting_memory --rounds 3 --runs 300",
        baselines=["A (raw, blocked on a signal)"],
        ours=["B (graph waiting for input)"],
        ratios=[("B/A", "B (graph waiting for input)", "A (raw, blocked on a signal)")],
    )
    with bench_stack(raw_worker=True, gateway=False) as stack:
        ours, settings = await durable.connect_ours(stack.temporal_address, stack.task_queue)
        raw = await Client.connect(stack.temporal_address)
        spec = durable.spec_of(durable.WAITER)
        sides: dict[str, tuple[Callable[[], Awaitable[WorkflowHandle[Any, Any]]], Any]] = {
            "B (graph waiting for input)": (
                lambda: durable.start_graph(ours, settings, spec),
                BenchStack.start_worker,
            ),
            "A (raw, blocked on a signal)": (
                lambda: durable.start_raw(raw, "RawWaiter", "Which colour?", stack.raw_task_queue),
                BenchStack.start_raw_worker,
            ),
        }
        for round_ in range(rounds):
            for name in harness.rotated(list(sides), round_):
                start, launch = sides[name]
                if round_ > 0:  # a fresh worker: what it holds is this round's runs only
                    proc = stack.worker if launch is BenchStack.start_worker else stack.raw_worker
                    assert proc is not None
                    stop(proc)
                    launch(stack)
                proc = stack.worker if launch is BenchStack.start_worker else stack.raw_worker
                assert proc is not None
                await waiting_batch(start, WARM)
                before = rss_kb(proc.pid)
                await waiting_batch(start, runs)
                row.add(name, (rss_kb(proc.pid) - before) / runs)
            harness.say(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]}" for k, v in row.series.items())
            )
    return [row]


if __name__ == "__main__":
    harness.main(scenario, __doc__, rounds=3, runs=300)
