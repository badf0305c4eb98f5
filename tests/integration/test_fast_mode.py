"""Fast mode (`execution: local`) on the real engine: per graph, per node and per agent, the
activities run as local activities (a marker in the history, no scheduled activity task), with
the same results, retries and failure handling as remote ones; what means nothing is refused.
(A worker killed during a local activity: the chaos suite's `fast_*` runs.)"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from config import Settings
from tests.integration.graphs import misbehaving_tools, start_graph
from workflows.agent import AgentWorkflow
from workflows.agent_spec import AgentDefinition, validate_agent
from workflows.graph_spec import validate
from workflows.state import AgentInput, NodeStatus, RunStatus


async def _events(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return list((await handle.fetch_history()).events)


def _scheduled(events: list[Any]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def _local(events: list[Any]) -> int:
    # Each local activity's result is recorded as a marker named "core_local_activity".
    return sum(
        1
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )


def _tool(node_id: str, tool: str, args: dict[str, str] | None = None, **extra: Any) -> dict:  # type: ignore[type-arg]
    return {"id": node_id, "type": "tool", "config": {"tool": tool, "args": args or {}}, **extra}


def _chain(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"name": "fast", "entry": nodes[0]["id"], "nodes": list(nodes), "edges": edges, **extra}


async def test_a_local_graph_runs_its_nodes_as_local_activities_and_a_node_may_opt_out(
    client: Client, settings: Settings, worker
):
    spec = _chain(
        _tool("a", "calculator", args={"expression": '"2 + 3"'}),
        _tool("b", "calculator", args={"expression": '"4 * 5"'}, execution="remote"),
        {"id": "c", "type": "llm", "config": {"prompt": "Say hi"}},
        execution="local",
    )
    async with worker(tools=misbehaving_tools(settings)):
        handle = await start_graph(client, settings, spec, {})
        state = await handle.result()
        events = await _events(handle)
    assert state.status is RunStatus.COMPLETED
    assert all(n.status is NodeStatus.COMPLETED for n in state.nodes)
    assert state.variables["a"]["value"]["result"] == "2 + 3 = 5"
    assert state.variables["b"]["value"]["result"] == "4 * 5 = 20"
    assert state.outputs["c"]["value"]["text"]
    assert _scheduled(events) == ["run_tool"]  # only b, which opted out
    assert _local(events) == 3  # the tool listing, a and c


async def test_a_flaky_local_node_is_retried_and_a_broken_one_takes_its_failure_edge(
    client: Client, settings: Settings, worker
):
    retry = {"max_attempts": 3, "initial_interval": 0.1}
    spec = _chain(_tool("flaky", "flaky", retry=retry), _tool("broken", "broken", retry=retry))
    spec["execution"] = "local"
    spec["nodes"].append({"id": "fallback", "type": "transform", "config": {"set": {"ok": "1"}}})
    spec["edges"].append({"source": "broken", "target": "fallback", "on": "failure"})
    async with worker(tools=misbehaving_tools(settings)):
        handle = await start_graph(client, settings, spec, {})
        state = await handle.result()
        events = await _events(handle)
    nodes = {n.id: n for n in state.nodes}
    assert state.status is RunStatus.COMPLETED
    assert state.variables["flaky"]["value"]["result"] == "ok on attempt 2"
    assert nodes["flaky"].attempts == 2
    assert nodes["broken"].status is NodeStatus.FAILED and nodes["broken"].attempts == 3
    assert "the service is down" in (nodes["broken"].error or "")
    assert state.outputs["fallback"]["value"]["ok"] == 1
    assert _scheduled(events) == []


async def test_a_local_agent_answers_with_no_activity_task(
    client: Client, settings: Settings, worker
):
    agent = AgentDefinition(name="quick", execution="local")
    async with worker():
        handle = await client.start_workflow(
            AgentWorkflow.run,
            AgentInput(query="What is 17 * 23?", agent=agent),
            id=f"fast-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
        )
        state = await handle.result()
        events = await _events(handle)
    assert state.status is RunStatus.COMPLETED and "391" in (state.answer or "")
    assert _scheduled(events) == []
    names = [n.name for n in state.nodes]
    assert "tool-calculator" in names and _local(events) == len(state.nodes)


def test_execution_is_refused_where_it_means_nothing_and_must_be_a_known_value() -> None:
    spec = _chain(
        {"id": "t", "type": "transform", "config": {"set": {"x": "1"}}, "execution": "local"},
        _tool("a", "flaky", execution="fast"),
    )
    problems = {p.path: p.message for p in validate(spec, None).problems}
    assert "execution applies to llm and tool nodes" in problems["nodes[0].execution"]
    assert "nodes[1].execution" in problems
    agent = validate_agent({"name": "x", "execution": "sometimes"}, None)
    assert [p.path for p in agent.problems] == ["execution"]
