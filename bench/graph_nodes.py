"""What one graph node costs, and how big a long loop's history gets, on a real dev server.

    python -m bench.graph_nodes [--runs 5] [--loop-steps 5000]

- Per-node overhead: a chain of 100 `transform` nodes and a chain of 100 `tool` nodes
  (calculator), each against a chain of 1 node: (t100 - t1) / 99 per node, median of `--runs`.
  The tool chain is compared with a hand-written Temporal workflow running 100 activities one
  after the other, measured in the same run (ratio per node).
- A loop of `--loop-steps` node executions, of transform nodes and of tool nodes: events in the
  history of each run of the chain (a long loop continues as new past `history_threshold`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from bench.raw_workflows import RawChain, raw_noop
from config import Settings
from devstack.processes import dev_server_command, free_port, port_open, start, stop, wait_until
from temporal_client import connect, ensure_search_attributes
from worker import build_worker
from workflows.graph_spec import validate
from workflows.state import GraphInput


def chain(size: int, kind: str) -> dict[str, Any]:
    def node(i: int) -> dict[str, Any]:
        if kind == "tool":
            args = {"expression": f"'{i} + 1'"}
            return {"id": f"n{i}", "type": "tool", "config": {"tool": "calculator", "args": args}}
        return {"id": f"n{i}", "type": "transform", "config": {"set": {"v": f"{i} + 1"}}}

    edges = [{"source": f"n{i - 1}", "target": f"n{i}"} for i in range(1, size)]
    return {"name": "chain", "entry": "n0", "nodes": [node(i) for i in range(size)], "edges": edges}


def loop(steps: int, kind: str) -> dict[str, Any]:
    """count (-> calc) looping back until `steps` node executions are done."""
    body = [{"id": "count", "type": "transform", "config": {"set": {"i": "vars.i + 1"}}}]
    if kind == "tool":
        calc = {"tool": "calculator", "args": {"expression": "string(vars.i) + ' * 2'"}}
        body.append({"id": "calc", "type": "tool", "config": calc})
    last = body[-1]["id"]
    rounds = (steps - 2) // len(body)
    edges = [{"source": "start", "target": "count"}]
    if kind == "tool":
        edges.append({"source": "count", "target": "calc"})
    edges += [
        {"source": last, "target": "count", "when": f"vars.i < {rounds}"},
        {"source": last, "target": "done", "when": f"vars.i >= {rounds}"},
    ]
    nodes = [
        {"id": "start", "type": "transform", "config": {"set": {"i": "0"}}},
        *body,
        {"id": "done", "type": "transform", "config": {"set": {"end": "vars.i"}}},
    ]
    return {
        "name": "loop",
        "entry": "start",
        "max_steps": steps + 10,
        "nodes": nodes,
        "edges": edges,
    }


async def _graph(client: Client, settings: Settings, data: dict[str, Any]) -> tuple[float, str]:
    checked = validate(data, ["calculator"])
    assert checked.spec is not None, checked.problems
    begun = time.perf_counter()
    handle = await client.start_workflow(
        "GraphWorkflow",
        GraphInput(spec=checked.spec, **settings.run_settings().model_dump()),
        id=f"b-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
    )
    await handle.result()
    return (time.perf_counter() - begun) * 1000, handle.id


async def _raw(client: Client, settings: Settings, n: int) -> float:
    begun = time.perf_counter()
    await client.execute_workflow(
        RawChain.run, n, id=f"raw-{uuid.uuid4().hex}", task_queue=settings.task_queue + "-raw"
    )
    return (time.perf_counter() - begun) * 1000


async def measure(address: str, runs: int, loop_steps: int) -> None:
    settings = Settings(temporal_address=address, task_queue=f"b-{uuid.uuid4().hex}")
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    raw_worker = Worker(
        client, task_queue=settings.task_queue + "-raw", workflows=[RawChain], activities=[raw_noop]
    )
    async with build_worker(client, settings), raw_worker:
        await _graph(client, settings, chain(2, "tool"))  # warm-up
        await _raw(client, settings, 2)
        per_node: dict[str, list[float]] = {"transform": [], "tool": [], "raw activity": []}
        for _ in range(runs):  # interleaved, so that drift hits all alike
            for kind in ("transform", "tool"):
                one, _ = await _graph(client, settings, chain(1, kind))
                hundred, _ = await _graph(client, settings, chain(100, kind))
                per_node[kind].append((hundred - one) / 99)
            one_raw, hundred_raw = (
                await _raw(client, settings, 1),
                await _raw(client, settings, 100),
            )
            per_node["raw activity"].append((hundred_raw - one_raw) / 99)
        medians = {k: statistics.median(v) for k, v in per_node.items()}
        for kind, values in per_node.items():
            spread = f"{min(values):.2f}-{max(values):.2f}"
            sys.stdout.write(f"{kind:>13}: {medians[kind]:.2f} ms/node (spread {spread})\n")
        ratio = medians["tool"] / medians["raw activity"]
        sys.stdout.write(f"tool node / raw activity: {ratio:.2f}x\n")
        for kind in ("transform", "tool"):
            elapsed, workflow_id = await _graph(client, settings, loop(loop_steps, kind))
            lengths = [
                r.history_length
                async for r in client.list_workflows(f"WorkflowId = '{workflow_id}'")
            ]
            sys.stdout.write(
                f"{loop_steps}-step {kind} loop: {elapsed / 1000:.1f} s, {len(lengths)} run(s), "
                f"history events per run: max {max(lengths)}, all {sorted(lengths)}\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--loop-steps", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start(dev_server_command(Path(tmp) / "t.db", "127.0.0.1", port, None))
        try:
            wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="dev server")
            asyncio.run(measure(f"127.0.0.1:{port}", args.runs, args.loop_steps))
        finally:
            stop(server)


if __name__ == "__main__":
    main()
