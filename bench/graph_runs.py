"""Graph runs end to end on a real dev server and worker: this checkout against another.

    git worktree add /tmp/baseline <commit>          # e.g. the commit before a change
    python -m bench.graph_runs --baseline /tmp/baseline [--rounds 3]

Two graphs: a chain of 200 `transform` nodes (all evaluated by the workflow: the per-node cost of
expressions, limits and events) and a 4-node graph (condition, tool, transform, llm). Each round
runs both checkouts in turn, each in a fresh process with its own dev server; it prints the
median run time of each graph (5 runs after a warm-up) and the ratio this/baseline per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from config import PROJECT_ROOT


def chain(size: int) -> dict[str, Any]:
    nodes = [
        {
            "id": f"n{i}",
            "type": "transform",
            "config": {"set": {f"v{i}": f"{i} + size(input.items)"}},
        }
        for i in range(size)
    ]
    edges = [
        {
            "source": f"n{i - 1}",
            "target": f"n{i}",
            "when": f"n{i - 1}.metadata.status == 'completed'",
        }
        for i in range(1, size)
    ]
    return {"name": "chain", "entry": "n0", "nodes": nodes, "edges": edges}


FOUR: dict[str, Any] = {
    "name": "four",
    "entry": "a",
    "nodes": [
        {"id": "a", "type": "condition", "config": {"expression": "size(input.items) > 0"}},
        {
            "id": "b",
            "type": "tool",
            "config": {"tool": "calculator", "args": {"expression": "'2 * 3'"}},
        },
        {"id": "c", "type": "transform", "config": {"set": {"x": "b.value.result"}}},
        {"id": "d", "type": "llm", "config": {"prompt": "Say {{ vars.x }}"}},
    ],
    "edges": [
        {"source": "a", "target": "b"},
        {"source": "b", "target": "c"},
        {"source": "c", "target": "d"},
    ],
}


async def measure() -> dict[str, float]:
    """Runs in the checkout under test (its modules on sys.path)."""
    from config import Settings
    from devstack.processes import dev_server_command, free_port, port_open, start, stop, wait_until
    from temporal_client import connect, ensure_search_attributes
    from worker import build_worker
    from workflows.graph_spec import validate
    from workflows.state import GraphInput

    folder = Path(tempfile.mkdtemp())
    port = free_port()
    server = start(
        dev_server_command(folder / "t.db", "127.0.0.1", port, None), log=folder / "t.log"
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="dev server")
        settings = Settings(
            temporal_address=f"127.0.0.1:{port}", task_queue=f"b-{uuid.uuid4().hex}"
        )
        client = await connect(settings)
        await ensure_search_attributes(client, settings.namespace)
        out: dict[str, float] = {}
        async with build_worker(client, settings):
            for name, data in (("chain200", chain(200)), ("four", FOUR)):
                spec = validate(data, ["calculator"]).spec
                times = []
                for i in range(6):
                    start_at = time.perf_counter()
                    handle = await client.start_workflow(
                        "GraphWorkflow",
                        GraphInput(spec=spec, input={"items": [1, 2]}),
                        id=f"b-{uuid.uuid4().hex}",
                        task_queue=settings.task_queue,
                    )
                    await handle.result()
                    if i:
                        times.append(time.perf_counter() - start_at)
                out[name] = statistics.median(times) * 1000
        return out
    finally:
        stop(server)


def _run(root: Path) -> dict[str, float]:
    # This file's `measure`, run with the other checkout's modules first on the path.
    code = (
        "import asyncio, importlib.util, json, sys; sys.path.insert(0, sys.argv[1]);"
        "spec = importlib.util.spec_from_file_location('graph_runs_bench', sys.argv[2]);"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module);"
        "print(json.dumps(asyncio.run(module.measure())))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), __file__],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for round_ in range(args.rounds):
        mine, base = _run(PROJECT_ROOT), _run(args.baseline)
        cells = [
            f"{k}: {mine[k]:.0f} ms vs {base[k]:.0f} ms ({mine[k] / base[k]:.2f}x)" for k in mine
        ]
        sys.stdout.write(f"round {round_ + 1}: " + "; ".join(cells) + "\n")


if __name__ == "__main__":
    main()
