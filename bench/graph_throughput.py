"""Scenarios 1 and 2: the 4-node graph (calculator, model, calculator, model), `--runs` runs at
concurrency 50, as runs/s and as worker + server CPU per run.

    python -m bench.graph_throughput [--rounds 3] [--runs 200]

Sides, in a rotated order each round, on one dev server:
- A: a hand-written Temporal workflow running the same 4 activities on a plain SDK worker;
- B: durable-agent's GraphWorkflow on its worker (`python worker.py`), started as the gateway
  starts it (same input and search attributes) but straight on Temporal;
- B fast: the same graph with `execution: local` (n/a where this checkout refuses the field);
- D: LangGraph `StateGraph` + `AsyncSqliteSaver` on a file, in this process.
CPU is measured with psutil on the worker and dev-server processes (D: this process).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from temporalio.client import Client

from bench import durable, harness
from bench.harness import CpuMeter, Row
from bench.langgraph_four import batch as langgraph_batch
from bench.langgraph_four import four_graph
from bench.stack import bench_stack

CONCURRENCY = 50
COMMAND = "python -m bench.graph_throughput --rounds 3 --runs 200"


def rows(runs: int) -> tuple[Row, Row]:
    speed = Row(
        key="graph_throughput",
        scenario=f"4-node graph, {runs} runs at concurrency {CONCURRENCY}",
        unit="runs/s",
        goal="B ≥ 1.0× A; B fast ≥ 0.5× D",
        command=COMMAND,
        baselines=["A", "D"],
        ours=["B", "B fast"],
        ratios=[("B/A", "B", "A"), ("B/D", "B", "D"), ("B fast/D", "B fast", "D")],
    )
    cpu = Row(
        key="cpu_per_run",
        scenario="worker + server CPU per run (4-node graph)",
        unit="ms",
        goal="B ≤ 1.1× A",
        command=COMMAND,
        baselines=["A worker", "A server", "A total", "D"],
        ours=["B worker", "B server", "B total", "B fast total"],
        ratios=[
            ("B/A (worker+server)", "B total", "A total"),
            ("B/A worker", "B worker", "A worker"),
            ("B/A server", "B server", "A server"),
            ("B fast/A", "B fast total", "A total"),
        ],
        note="D is one process (LangGraph and its SQLite checkpointer in the bench process).",
    )
    return speed, cpu


async def scenario(rounds: int, runs: int | None) -> list[Row]:
    runs = runs or 200
    speed, cpu = rows(runs)
    fast = durable.fast_spec()
    spec = durable.spec_of(durable.four())
    with bench_stack(raw_worker=True, gateway=False) as stack, tempfile.TemporaryDirectory() as tmp:
        assert stack.worker and stack.raw_worker and stack.server
        ours, settings = await durable.connect_ours(stack.temporal_address, stack.task_queue)
        raw = await Client.connect(stack.temporal_address)
        starts = {
            "A": lambda: durable.start_raw(
                raw, "RawFour", durable.EXPRESSION, stack.raw_task_queue
            ),
            "B": lambda: durable.start_graph(ours, settings, spec),
        }
        if fast is not None:
            starts["B fast"] = lambda: durable.start_graph(ours, settings, fast)  # type: ignore[arg-type]
        pids = {
            "A": stack.raw_worker.pid,
            "B": stack.worker.pid,
            "B fast": stack.worker.pid,
        }
        async with four_graph(Path(tmp) / "checkpoints.db") as graph:
            # Warm-up: imports, caches, the server's task queues.
            for side, start in starts.items():
                await durable.completed_batch(start, min(10, runs), 10)
                harness.say(f"warm: {side}")
            await langgraph_batch(graph, min(10, runs), 10)
            for round_ in range(rounds):
                for side in harness.rotated(["A", "B", "B fast", "D"], round_):
                    if side == "D":
                        before = time.process_time()
                        took = await langgraph_batch(graph, runs, CONCURRENCY)
                        speed.add("D", runs / took)
                        cpu.add("D", (time.process_time() - before) * 1000 / runs)
                        continue
                    if side not in starts:
                        speed.add(side, None)
                        for part in ("worker", "server", "total"):
                            cpu.add(f"{side} {part}", None)
                        continue
                    meter = CpuMeter([pids[side], stack.server.pid])
                    meter.start()
                    took = await durable.completed_batch(starts[side], runs, CONCURRENCY)
                    worker_s, server_s = meter.stop()
                    speed.add(side, runs / took)
                    cpu.add(f"{side} worker", worker_s * 1000 / runs)
                    cpu.add(f"{side} server", server_s * 1000 / runs)
                    cpu.add(f"{side} total", (worker_s + server_s) * 1000 / runs)
                harness.say(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{k} {v[-1] or 0:.1f} runs/s" for k, v in speed.series.items())
                )
    return [speed, cpu]


if __name__ == "__main__":
    harness.main(scenario, __doc__, rounds=3, runs=200)
