"""Starting durable-agent runs straight on Temporal, with the input and search attributes the
gateway gives them (`app/routes/runs.py`), so that a scenario measures the workflow and not
the HTTP layer; and the graphs the scenarios run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from app.agent_catalog import load_agents
from app.routes.runs import agent_input
from config import Settings
from shared import RUN_AGENT, RUN_KIND, RUN_STAGE, RUN_STATUS
from temporal_client import connect, ensure_search_attributes
from workflows.agent_spec import DEFAULT_AGENT
from workflows.graph_spec import GraphSpec, validate
from workflows.patches import CURRENT_BASELINE
from workflows.state import AgentInput, GraphInput, RunStatus, Stage

QUERY = "What is 17 * 23?"
EXPRESSION = "2 * 3"


async def connect_ours(address: str, task_queue: str) -> tuple[Client, Settings]:
    """durable-agent's client (its converter) and settings; the search attributes registered
    (the worker does it too, but maybe not yet)."""
    settings = Settings(temporal_address=address, task_queue=task_queue)
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    return client, settings


def four(execution: str | None = None, where: str = "graph") -> dict[str, Any]:
    """4 nodes, each an activity: calculator, model, calculator, model (each prompt quotes the
    calculator's result), as `bench/raw_workflows.RawFour` and `bench/langgraph_four` do it.
    `execution`: the fast mode's field, on the graph or on each node."""
    calc = {"tool": "calculator", "args": {"expression": f"'{EXPRESSION}'"}}
    nodes: list[dict[str, Any]] = [
        {"id": "calc1", "type": "tool", "config": calc},
        {"id": "say1", "type": "llm", "config": {"prompt": "Say {{ calc1.value.result }}"}},
        {"id": "calc2", "type": "tool", "config": calc},
        {"id": "say2", "type": "llm", "config": {"prompt": "Say {{ calc2.value.result }}"}},
    ]
    graph: dict[str, Any] = {"name": "four", "entry": "calc1", "nodes": nodes}
    graph["edges"] = [
        {"source": a["id"], "target": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)
    ]
    if execution is not None:
        if where == "graph":
            graph["execution"] = execution
        else:
            for node in nodes:
                node["execution"] = execution
    return graph


WAITER: dict[str, Any] = {
    "name": "waiter",
    "entry": "ask",
    "nodes": [
        {"id": "ask", "type": "human_input", "config": {"question": "Which colour?"}},
        {"id": "done", "type": "transform", "config": {"set": {"colour": "ask.value.text"}}},
    ],
    "edges": [{"source": "ask", "target": "done"}],
}


def spec_of(data: dict[str, Any]) -> GraphSpec:
    checked = validate(data, ["calculator"])
    if checked.spec is None:
        raise ValueError(f"graph {data['name']!r} refused: {checked.problems}")
    return checked.spec


def fast_spec() -> GraphSpec | None:
    """The 4-node graph in fast mode (`execution: local`), or None where this checkout's
    validator refuses the field (the mode is not there)."""
    for where in ("graph", "node"):
        checked = validate(four("local", where), ["calculator"])
        if checked.spec is not None:
            return checked.spec
    return None


def graph_input(spec: GraphSpec, settings: Settings, data: dict[str, Any] | None = None) -> Any:
    return GraphInput(
        spec=spec,
        input=data or {},
        limits=settings.limits(),
        baseline=CURRENT_BASELINE,  # as the gateway starts runs
        **settings.run_settings().model_dump(),
    )


def default_agent_input(settings: Settings) -> AgentInput:
    agents = load_agents(settings.agents_dir, ["calculator", "search_docs", "append_note", "wait"])
    return agent_input(QUERY, settings, None, agents[DEFAULT_AGENT])


def search_attributes(kind: str) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RUN_STATUS, RunStatus.PENDING.value),
        SearchAttributePair(RUN_KIND, kind),
    ]
    if kind == "agent":
        pairs += [
            SearchAttributePair(RUN_STAGE, Stage.INTENT.value),
            SearchAttributePair(RUN_AGENT, DEFAULT_AGENT),
        ]
    return TypedSearchAttributes(pairs)


async def start_graph(
    client: Client, settings: Settings, spec: GraphSpec, data: dict[str, Any] | None = None
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        "GraphWorkflow",
        graph_input(spec, settings, data),
        id=f"run-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
        search_attributes=search_attributes("graph"),
    )


async def start_agent(client: Client, settings: Settings) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        "AgentWorkflow",
        default_agent_input(settings),
        id=f"run-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
        search_attributes=search_attributes("agent"),
    )


async def start_raw(
    client: Client, workflow: str, arg: Any, task_queue: str
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        workflow, arg, id=f"raw-{uuid.uuid4().hex}", task_queue=task_queue
    )


async def completed_batch(
    start: Callable[[], Awaitable[WorkflowHandle[Any, Any]]], runs: int, concurrency: int
) -> float:
    """Seconds for `runs` runs started and awaited to completion, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            handle = await start()
            await handle.result()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    return time.perf_counter() - started
