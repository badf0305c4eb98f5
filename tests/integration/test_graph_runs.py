"""Graph runs on the real engine: every node type, branch, join, loop, retries, human input,
cancellation and runtime expression errors."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError

from config import Settings
from tests.helpers import eventually
from tests.integration.graphs import catalog_spec, graph_state, misbehaving_tools, start_graph
from workflows.graph import GraphWorkflow
from workflows.state import NodeStatus, RunStatus, UserInput


def node(state, node_id):  # type: ignore[no-untyped-def]
    return next(n for n in state.nodes if n.id == node_id)


async def test_conditional_branch_runs_one_side_and_skips_the_other(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_graph(
            client, settings, catalog_spec("triage"), {"ticket": "I want a refund for order 7"}
        )
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.variables["classify"]["value"] == "billing"
    assert node(state, "billing_reply").status is NodeStatus.COMPLETED
    assert node(state, "support_reply").status is NodeStatus.SKIPPED
    assert list(state.outputs) == ["billing_reply"]
    assert "refund for order 7" in state.outputs["billing_reply"]["value"]["text"]
    assert node(state, "billing_reply").attempts == 1
    assert state.usage.tokens_in > 0
    lifecycle = [
        e.message.split(" ")[1]
        for e in state.events
        if e.kind == "node" and e.message.startswith("billing_reply ")
    ]
    assert lifecycle == ["initializing", "initialized", "executing", "completed"]


async def test_loop_runs_until_the_review_passes(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_graph(client, settings, catalog_spec("draft_review"), {"topic": "tea"})
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    revisions = int(state.variables["vars"]["revisions"])
    assert revisions >= 1 and node(state, "revise").runs == revisions
    assert node(state, "review").runs == revisions + 1
    published = state.outputs["publish"]["value"]["published"]
    assert len(published) >= 300 and "tea" in published
    assert state.steps <= 20


async def test_loop_bound_fails_the_run_clearly(client: Client, settings: Settings, worker):
    spec = catalog_spec("draft_review") | {"max_steps": 5}
    async with worker():
        handle = await start_graph(client, settings, spec, {"topic": "tea"})
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        state = await graph_state(handle)
    assert "max_steps=5 nodes without finishing" in str(failed.value.cause)
    assert state.status is RunStatus.FAILED and state.steps == 5  # the sixth never started


async def test_human_input_approves_by_update_and_rejects_by_signal(
    client: Client, settings: Settings, worker
):
    async with worker():
        yes = await start_graph(
            client, settings, catalog_spec("approval"), {"announcement": "v2 ships"}
        )
        waiting = await eventually(
            lambda: graph_state(yes), lambda s: s.status is RunStatus.WAITING_FOR_INPUT
        )
        assert waiting.waiting_node == "approval" and "v2 ships" in (waiting.question or "")
        await yes.execute_update(GraphWorkflow.submit_input, UserInput(text="Yes, go"))
        approved = await yes.result()

        no = await start_graph(
            client, settings, catalog_spec("approval"), {"announcement": "v3 ships"}
        )
        await eventually(lambda: graph_state(no), lambda s: s.status is RunStatus.WAITING_FOR_INPUT)
        await no.signal("provide_input", {"bad": "payload"})  # ignored
        await no.signal("provide_input", {"text": "not yet"})
        rejected = await no.result()
    assert node(approved, "publish").status is NodeStatus.COMPLETED
    assert node(approved, "rejected").status is NodeStatus.SKIPPED
    assert "v2 ships" in approved.outputs["publish"]["value"]["published"]
    assert rejected.outputs == {"rejected": rejected.variables["rejected"]}
    assert rejected.variables["vars"]["rejected_because"] == "not yet"


PARALLEL = {
    "name": "fan_out_join",
    "entry": "start",
    "nodes": [
        {"id": "start", "type": "transform", "config": {"set": {"n": "input.n"}}},
        {"id": "double", "type": "transform", "config": {"set": {"doubled": "vars.n * 2"}}},
        {
            "id": "calc",
            "type": "tool",
            "config": {"tool": "calculator", "args": {"expression": 'string(vars.n) + " * 3"'}},
        },
        {
            "id": "join",
            "type": "condition",
            "config": {
                "expression": '{"doubled": double.value.doubled, "tripled": calc.value.result}'
            },
        },
    ],
    "edges": [
        {"source": "start", "target": "double"},
        {"source": "start", "target": "calc"},
        {"source": "double", "target": "join"},
        {"source": "calc", "target": "join"},
    ],
}


async def test_parallel_branches_join_and_tool_nodes_take_arguments(
    client: Client, settings: Settings, worker
):
    async with worker():
        state = await (await start_graph(client, settings, PARALLEL, {"n": 7})).result()
    assert state.status is RunStatus.COMPLETED
    assert state.outputs["join"]["value"] == {"doubled": 14, "tripled": "7 * 3 = 21"}
    assert node(state, "join").runs == 1
    assert state.variables["calc"]["metadata"]["tool"] == "calculator"


def _one_tool(tool: str, retry: dict | None = None, fallback: bool = False) -> dict:  # type: ignore[type-arg]
    spec = {
        "name": f"one_{tool}",
        "entry": "call",
        "nodes": [
            {
                "id": "call",
                "type": "tool",
                "config": {"tool": tool, "args": {}},
                "retry": retry or {"max_attempts": 3, "initial_interval": 0.1, "backoff": 1},
            }
        ],
        "edges": [],
    }
    if fallback:
        spec["nodes"].append(
            {
                "id": "fallback",
                "type": "transform",
                "config": {"set": {"why": "call.metadata.error"}},
            }
        )
        spec["edges"] = [{"source": "call", "target": "fallback", "on": "failure"}]
    return spec


async def test_retry_then_success(client: Client, settings: Settings, worker):
    async with worker(tools=misbehaving_tools(settings)):
        state = await (await start_graph(client, settings, _one_tool("flaky"), {})).result()
    assert state.status is RunStatus.COMPLETED
    assert node(state, "call").attempts == 2
    assert state.outputs["call"]["value"]["result"] == "ok on attempt 2"


async def test_retries_exhausted_fail_the_run_with_the_node_error(
    client: Client, settings: Settings, worker
):
    retry = {"max_attempts": 2, "initial_interval": 0.1, "backoff": 1}
    async with worker(tools=misbehaving_tools(settings)):
        handle = await start_graph(client, settings, _one_tool("broken", retry), {})
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        state = await graph_state(handle)
    assert "node 'call' failed: the service is down" in str(failed.value.cause)
    call = node(state, "call")
    assert call.status is NodeStatus.FAILED and call.attempts == 2
    assert call.error == "the service is down"


async def test_a_failure_edge_handles_a_failed_node(client: Client, settings: Settings, worker):
    retry = {"max_attempts": 1, "initial_interval": 0.1, "backoff": 1}
    async with worker(tools=misbehaving_tools(settings)):
        spec = _one_tool("broken", retry, fallback=True)
        state = await (await start_graph(client, settings, spec, {})).result()
    assert state.status is RunStatus.COMPLETED
    assert node(state, "call").status is NodeStatus.FAILED
    assert state.outputs["fallback"]["value"] == {"why": "the service is down"}


async def test_agent_node_runs_the_pipeline_as_a_child(client: Client, settings: Settings, worker):
    spec = {
        "name": "ask_agent",
        "entry": "ask",
        "nodes": [{"id": "ask", "type": "agent", "config": {"query": "What is {{ input.expr }}?"}}],
    }
    async with worker():
        handle = await start_graph(client, settings, spec, {"expr": "6 * 7"})
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    output = state.outputs["ask"]
    assert output["value"]["status"] == "completed" and "42" in output["value"]["answer"]
    assert output["metadata"]["run_id"] == f"{handle.id}-ask-1"


async def test_cancel_stops_the_running_node_and_cancels_the_rest(
    client: Client, settings: Settings, worker
):
    spec = {
        "name": "slow_then_more",
        "entry": "wait",
        "nodes": [
            {"id": "wait", "type": "tool", "config": {"tool": "slow", "args": {}}},
            {"id": "after", "type": "transform", "config": {"set": {"x": "1"}}},
        ],
        "edges": [{"source": "wait", "target": "after"}],
    }
    async with worker(tools=misbehaving_tools(settings)):
        handle = await start_graph(client, settings, spec, {})
        await eventually(
            lambda: graph_state(handle), lambda s: node(s, "wait").status is NodeStatus.EXECUTING
        )
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await graph_state(handle)
    assert state.status is RunStatus.CANCELLED
    assert node(state, "wait").status is NodeStatus.CANCELLED
    assert node(state, "after").status is NodeStatus.CANCELLED


async def test_an_expression_that_fails_at_run_time_fails_the_run_clearly(
    client: Client, settings: Settings, worker
):
    spec = {
        "name": "bad_key",
        "entry": "a",
        "nodes": [
            {"id": "a", "type": "transform", "config": {"set": {"x": "input.missing"}}},
        ],
    }
    async with worker():
        handle = await start_graph(client, settings, spec, {})
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "node 'a' failed: expression 'input.missing' failed: no key 'missing'" in str(
        failed.value.cause
    )
