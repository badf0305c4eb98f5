"""Baseline D: the 4-node graph of `bench/graph_throughput.py` as a LangGraph `StateGraph`
checkpointed by `AsyncSqliteSaver` on a file: the same calculator and offline-model functions
as the Temporal activities, called in the nodes, all in the calling process.

    python -m bench.langgraph_four [--runs 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict

from bench.raw_activities import calc, say


class FourState(TypedDict, total=False):
    expression: str
    calc1: str
    say1: str
    calc2: str
    say2: str


async def _calc1(state: FourState) -> dict[str, Any]:
    return {"calc1": calc(state["expression"])}


async def _say1(state: FourState) -> dict[str, Any]:
    return {"say1": await say(f"Say {state['calc1']}")}


async def _calc2(state: FourState) -> dict[str, Any]:
    return {"calc2": calc(state["expression"])}


async def _say2(state: FourState) -> dict[str, Any]:
    return {"say2": await say(f"Say {state['calc2']}")}


@asynccontextmanager
async def four_graph(db_file: Path) -> AsyncIterator[Any]:
    """The compiled graph, checkpointing every step into `db_file`."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(FourState)
    for name, fn in (("calc1", _calc1), ("say1", _say1), ("calc2", _calc2), ("say2", _say2)):
        builder.add_node(name, fn)
    builder.add_edge(START, "calc1")
    builder.add_edge("calc1", "say1")
    builder.add_edge("say1", "calc2")
    builder.add_edge("calc2", "say2")
    builder.add_edge("say2", END)
    async with AsyncSqliteSaver.from_conn_string(str(db_file)) as saver:
        yield builder.compile(checkpointer=saver)


async def run_one(graph: Any, expression: str = "2 * 3") -> dict[str, Any]:
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    result: dict[str, Any] = await graph.ainvoke({"expression": expression}, config)
    return result


async def batch(graph: Any, runs: int, concurrency: int) -> float:
    """Seconds to complete `runs` runs, at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await run_one(graph)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    return time.perf_counter() - started


async def _main(runs: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with four_graph(Path(tmp) / "checkpoints.db") as graph:
            print(await run_one(graph))  # noqa: T201
            took = await batch(graph, runs, concurrency)
            print(f"{runs / took:.1f} runs/s")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(_main(args.runs, args.concurrency))
