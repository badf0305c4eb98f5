"""What a hostile graph, input or signal does to the engine: it is refused or fails its own run
once, with a message, while other runs on the same worker keep completing.

Runs here are started directly with the Temporal client, skipping the gateway's validation: the
worker must never trust its input.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from activities.tools.builtin import default_registry
from activities.tools.registry import Tool, ToolContext, ToolResult
from config import Settings
from devstack.processes import temporal_binary
from tests.integration.graphs import graph_state
from tests.integration.runs import start_run, wait_for_status
from worker import build_worker
from workflows.agent import AgentWorkflow
from workflows.graph import GraphWorkflow
from workflows.state import GraphState, RunStatus, UserInput


def graph(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] = (), **extra: Any) -> dict:  # type: ignore[assignment]
    return {
        "name": "hostile",
        "entry": nodes[0]["id"],
        "nodes": nodes,
        "edges": list(edges),
    } | extra


def self_loop(node_id: str, values: dict[str, str], max_steps: int) -> dict[str, Any]:
    """A transform that loops on itself until max_steps stops it (the exit is never taken)."""
    return graph(
        [
            {"id": node_id, "type": "transform", "config": {"set": values}},
            {"id": "done", "type": "condition", "config": {"expression": "true"}},
        ],
        [
            {"source": node_id, "target": node_id, "when": "true"},
            {"source": node_id, "target": "done", "when": "false"},
        ],
        max_steps=max_steps,
    )


async def start_raw(
    client: Client, settings: Settings, spec: dict[str, Any], graph_input: Any = None
) -> WorkflowHandle[Any, Any]:
    """A graph run whose input is whatever we say: no validation on the way."""
    return await client.start_workflow(
        "GraphWorkflow",
        {"spec": spec, "input": graph_input if graph_input is not None else {}},
        id=f"hostile-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
        result_type=GraphState,
    )


async def failure_of(handle: WorkflowHandle[Any, Any]) -> str:
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), timeout=120)
    return str(caught.value.cause)


async def a_normal_run_completes(client: Client, settings: Settings) -> None:
    handle = await start_run(client, settings, "What is 6 * 7?")
    state = await asyncio.wait_for(handle.result(), timeout=60)
    assert state.status is RunStatus.COMPLETED and "42" in (state.answer or "")


async def test_an_operator_chain_that_crashes_the_cel_engine_fails_its_run_once(
    client: Client, settings: Settings, worker
):
    # 15,000 terms validate with the CEL engine but overflow its stack when evaluated: it would
    # take the whole worker down (this test process) on every attempt.
    chain = "+".join(["1"] * 15_000) + " > 0"
    spec = graph([{"id": "check", "type": "condition", "config": {"expression": chain}}])
    async with worker():
        handle = await start_raw(client, settings, spec)
        message = await failure_of(handle)
        await a_normal_run_completes(client, settings)
        state: GraphState = await graph_state(handle)
    assert "characters long; the limit is 2000" in message
    assert state.status is RunStatus.FAILED and message.endswith(state.errors[0])


async def test_nested_comprehensions_are_refused_by_the_worker(
    client: Client, settings: Settings, worker
):
    nested = "[0,1,2,3,4,5,6,7,8,9]"
    expression = "1"
    for name in ("a", "b", "c", "d", "e", "f"):
        expression = f"{nested}.map({name}, {expression})"
    spec = graph([{"id": "big", "type": "transform", "config": {"set": {"x": expression}}}])
    async with worker():
        handle = await start_raw(client, settings, spec)
        message = await failure_of(handle)
        await a_normal_run_completes(client, settings)
    assert "comprehension macros (map) are not supported" in message


async def test_a_quadratic_template_is_refused_by_the_worker(
    client: Client, settings: Settings, worker
):
    spec = graph([{"id": "ask", "type": "llm", "config": {"prompt": "{{" * 40_000}}])
    async with worker():
        handle = await start_raw(client, settings, spec)
        message = await failure_of(handle)
    assert "template is 80000 characters long" in message


async def test_a_long_loop_of_workflow_nodes_yields_to_temporal_and_ends_clearly(
    client: Client, settings: Settings, worker
):
    # A transform looping on itself: every iteration runs inside the workflow. Without yielding,
    # the whole loop runs in one activation and the deadlock detector wedges the worker.
    spec = self_loop("spin", {"n": "1"}, max_steps=3000)
    async with worker():
        handle = await start_raw(client, settings, spec)
        other = asyncio.create_task(a_normal_run_completes(client, settings))
        message = await failure_of(handle)
        await other
    assert "max_steps=3000" in message
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert len(markers) >= 3000 // 20 - 1  # it gave the activation back every 20 nodes


async def test_a_growing_variable_fails_its_node_at_the_output_bound(
    client: Client, settings: Settings, worker
):
    # Doubling a string in a loop: the run fails at the bound instead of taking the worker's
    # memory and Temporal's payload limit with it.
    spec = self_loop("grow", {"s": "has(vars.s) ? vars.s + vars.s : 'xxxxxxxxxxxxxxxx'"}, 100)
    async with worker():
        handle = await start_raw(client, settings, spec)
        message = await failure_of(handle)
    assert "node 'grow' failed: output is" in message and "the limit is 65536" in message


class NoArgs(BaseModel):
    pass


async def _huge(args: NoArgs, ctx: ToolContext) -> ToolResult:
    return ToolResult(text="x" * (3 * 1024 * 1024))


async def test_a_tool_result_past_the_payload_limit_fails_once(
    client: Client, settings: Settings, worker
):
    tools = default_registry(settings.knowledge_dir, settings.notes_file)
    tools.register(Tool(name="huge", description="huge", args_model=NoArgs, func=_huge))
    spec = graph([{"id": "fetch", "type": "tool", "config": {"tool": "huge"}}])
    async with worker(tools=tools):
        handle = await start_raw(client, settings, spec)
        message = await failure_of(handle)
        state = await graph_state(handle)
    assert "huge returned 3145728 characters; the limit is 262144" in message
    assert next(n for n in state.nodes if n.id == "fetch").attempts == 1  # not retried


async def test_input_nested_past_the_decoder_limit_fails_once(
    client: Client, settings: Settings, worker
):
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(210):
        cursor["a"] = {}
        cursor = cursor["a"]
    spec = graph([{"id": "check", "type": "condition", "config": {"expression": "true"}}])
    async with worker():
        handle = await start_raw(client, settings, spec, deep)
        message = await failure_of(handle)
        await a_normal_run_completes(client, settings)
        state = await state_of_graph(handle)
    assert "the run's input cannot be read" in message
    assert state["status"] == "failed"


async def test_input_over_the_run_limits_fails_once(client: Client, settings: Settings, worker):
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(40):
        cursor["a"] = {}
        cursor = cursor["a"]
    spec = graph([{"id": "check", "type": "condition", "config": {"expression": "true"}}])
    async with worker():
        handle = await start_raw(client, settings, spec, deep)
        message = await failure_of(handle)
    assert "nested deeper than 32 levels" in message


async def state_of_graph(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    state: dict[str, Any] = await handle.query("get_state", result_type=dict)
    return state


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `temporal` CLI: `temporal workflow <args>` against the test's server. In a
    thread: the worker under test shares this event loop and must answer meanwhile."""
    command = [temporal_binary(), "workflow", *args, "--address", settings.temporal_address]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )


async def cli_signal(settings: Settings, run_id: str, name: str, *inputs: str) -> None:
    args = ["signal", "--workflow-id", run_id, "--name", name]
    for value in inputs:
        args += ["--input", value]
    done = await cli(settings, *args)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("inputs", [(), ('{"text": "one"}', '{"text": "two"}'), ("42",)])
async def test_a_malformed_signal_leaves_an_agent_run_waiting(
    client: Client, settings: Settings, worker, inputs: tuple[str, ...]
):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        await cli_signal(settings, handle.id, "provide_input", *inputs)
        await cli_signal(settings, handle.id, "pause", '"now"')  # pause takes no argument
        await cli_signal(settings, handle.id, "resume", "1", "2")
        # An update with the wrong number of arguments is rejected; the run is untouched.
        rejected = await cli(
            settings,
            "update",
            "execute",
            "--workflow-id",
            handle.id,
            "--name",
            "submit_input",
            *(a for i in inputs for a in ("--input", i)),
        )
        assert rejected.returncode != 0
        # Each signal above was handled (or dropped) before this update, in order.
        accepted = await handle.execute_update(
            AgentWorkflow.submit_input, UserInput(text="Three days in May")
        )
        state = await handle.result()
    assert accepted.status is RunStatus.RUNNING
    assert state.status is RunStatus.COMPLETED and state.user_inputs == ["Three days in May"]


async def test_a_malformed_signal_leaves_a_graph_run_waiting(
    client: Client, settings: Settings, worker
):
    spec = graph([{"id": "ask", "type": "human_input", "config": {"question": "Which?"}}])
    async with worker():
        handle = await start_raw(client, settings, spec)
        await wait_for_status_graph(handle, "waiting_for_input")
        await cli_signal(settings, handle.id, "provide_input")
        await cli_signal(settings, handle.id, "provide_input", '{"text": "a"}', '{"text": "b"}')
        await cli_signal(settings, handle.id, "provide_input", '{"text": "\\u0000\\u0000"}')
        await handle.execute_update(GraphWorkflow.submit_input, UserInput(text="this one"))
        result = await handle.result()
    assert result.variables["ask"]["value"] == {"text": "this one"}


async def wait_for_status_graph(handle: WorkflowHandle[Any, Any], status: str) -> None:
    from tests.helpers import eventually

    await eventually(lambda: state_of_graph(handle), lambda s: s["status"] == status, what=status)


async def test_one_run_of_many_parallel_nodes_leaves_slots_for_others(
    client: Client, settings: Settings
):
    # 150 parallel `wait` nodes on a worker with 20 activity slots: bounded per run, so another
    # run still gets a slot and completes while they wait.
    small = settings.model_copy(update={"max_concurrent_activities": 20})
    nodes = [{"id": "start", "type": "condition", "config": {"expression": "true"}}]
    edges = []
    for i in range(150):
        nodes.append(
            {
                "id": f"w{i}",
                "type": "tool",
                "config": {"tool": "wait", "args": {"seconds": "120.0"}},
            }
        )
        edges.append({"source": "start", "target": f"w{i}"})
    async with build_worker(client, small):
        hog = await start_raw(client, small, graph(nodes, edges))
        await wait_for_status_graph(hog, "running")
        await a_normal_run_completes(client, small)
        state = await state_of_graph(hog)
        executing = [n for n in state["nodes"] if n["status"] == "executing"]
        assert len(executing) == 16
        await hog.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(hog.result(), timeout=60)


async def test_expressions_that_would_read_too_much_fail_their_node(
    client: Client, settings: Settings, worker
):
    # Each expression is short and names 16 values, but those are a 57 KB list: the CEL engine
    # would convert 7 MB in one node (seconds with the GIL held). Bounded by bytes read.
    refs = ", ".join(["input.l"] * 16)
    spec = graph(
        [
            {
                "id": "t",
                "type": "transform",
                "config": {"set": {f"k{j}": f"[{refs}]" for j in range(8)}},
            }
        ]
    )
    async with worker():
        handle = await start_raw(client, settings, spec, {"l": [[] for _ in range(19_000)]})
        other = asyncio.create_task(a_normal_run_completes(client, settings))
        message = await failure_of(handle)
        await other
    assert "would read" in message and "the limit is 1048576" in message


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (None, "expected a GraphInput object"),
        (b"\x00\x01 not json", "expected a GraphInput object"),
        (
            {"spec": {"name": "x", "entry": "a", "nodes": []}, "input_timeout_s": 1e308},
            "cannot be read",
        ),
    ],
)
async def test_a_graph_run_started_with_garbage_fails_once(
    client: Client, settings: Settings, worker, arg: Any, expected: str
):
    async with worker():
        handle = await client.start_workflow(
            "GraphWorkflow", arg, id=f"hostile-{uuid.uuid4().hex}", task_queue=settings.task_queue
        )
        message = await failure_of(handle)
    assert expected in message


def _forged(status: str, stage: str) -> dict[str, Any]:
    now = "2026-01-01T00:00:00Z"
    state = {"run_id": "x", "query": "hi", "status": status, "stage": stage}
    return {"query": "hi", "state": state | {"created_at": now, "updated_at": now}}


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ({"query": "hi", "input_timeout_s": 1e308}, "cannot be read"),
        ({"query": "hi", "reflection_threshold": float("nan")}, "cannot be read"),
        (_forged("completed", "context"), "carried-over state is already completed"),
        (_forged("paused", "context"), "internal error: IllegalTransition"),
    ],
)
async def test_an_agent_run_started_with_garbage_fails_once(
    client: Client, settings: Settings, worker, arg: Any, expected: str
):
    async with worker():
        handle = await client.start_workflow(
            "AgentWorkflow", arg, id=f"hostile-{uuid.uuid4().hex}", task_queue=settings.task_queue
        )
        message = await failure_of(handle)
        await a_normal_run_completes(client, settings)
    assert expected in message


async def test_a_costly_regular_expression_fails_its_node(
    client: Client, settings: Settings, worker
):
    # A short literal pattern over 16 copies of a 60 KB text: seconds of regex work at once.
    text = " + ".join(["input.s"] * 16)
    condition = {"expression": f"({text}).matches('\\\\w{{200}}z')"}
    spec = graph([{"id": "check", "type": "condition", "config": condition}])
    async with worker():
        handle = await start_raw(client, settings, spec, {"s": "ab" * 30_000})
        message = await failure_of(handle)
        await a_normal_run_completes(client, settings)
    assert "matches() may read 131072 bytes of variables at most" in message


async def test_many_edges_that_read_a_lot_fail_the_run(client: Client, settings: Settings, worker):
    # 40 edges out of one node, each reading ~1 MB: 40 MB of conversions for one node's edges
    # froze the worker. A node's edges are bounded together, like its expressions.
    heavy = "[" + ", ".join(["a"] * 16) + "] == []"
    nodes = [
        {
            "id": "a",
            "type": "transform",
            "config": {"set": {"x": "[input.l, input.l]"}},
        },
        {"id": "b", "type": "condition", "config": {"expression": "true"}},
    ]
    edges = [{"source": "a", "target": "b", "when": heavy} for _ in range(40)]
    async with worker():
        handle = await start_raw(client, settings, graph(nodes, edges), {"l": [[]] * 3000})
        other = asyncio.create_task(a_normal_run_completes(client, settings))
        message = await failure_of(handle)
        await other
    assert "the conditions of the edges out of 'a' would read" in message


async def test_a_costly_regular_expression_in_an_edge_fails_the_run(
    client: Client, settings: Settings, worker
):
    text = " + ".join(["input.s"] * 16)
    nodes = [
        {"id": "a", "type": "condition", "config": {"expression": "true"}},
        {"id": "b", "type": "condition", "config": {"expression": "true"}},
    ]
    edges = [{"source": "a", "target": "b", "when": f"({text}).matches('\\\\w{{200}}z')"}]
    async with worker():
        handle = await start_raw(client, settings, graph(nodes, edges), {"s": "ab" * 30_000})
        message = await failure_of(handle)
    # matches() reads weigh 16 times: 960 KB of text is far past the edges' budget.
    assert "the conditions of the edges out of 'a' would read 15" in message


async def test_a_failing_template_in_a_loop_ends_clearly(
    client: Client, settings: Settings, worker
):
    # An llm node whose prompt reads 16 copies of many small lists, retried through an
    # `on: failure` edge: refused before any conversion, each time, never a stalled worker.
    prompt = "{{ [" + ", ".join(["a"] * 16) + "] }}"
    nodes = [
        {"id": "a", "type": "transform", "config": {"set": {"x": "[input.l, input.l]"}}},
        {"id": "p", "type": "llm", "config": {"prompt": prompt}},
        {"id": "end", "type": "condition", "config": {"expression": "true"}},
    ]
    edges = [
        {"source": "a", "target": "p"},
        {"source": "p", "target": "p", "on": "failure"},
        {"source": "p", "target": "end"},
    ]
    async with worker():
        spec = graph(nodes, edges, max_steps=100)
        handle = await start_raw(client, settings, spec, {"l": [[]] * 3000})
        other = asyncio.create_task(a_normal_run_completes(client, settings))
        message = await failure_of(handle)
        await other
        state = await graph_state(handle)
    assert "max_steps=100" in message
    assert "would read" in state.variables["p"]["metadata"]["error"]
