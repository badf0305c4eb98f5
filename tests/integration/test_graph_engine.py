"""The graph engine's promises on the real engine: no run hangs (a wait that times out, a node
that breaks, a long skipped chain), several questions at once answered by node id, pause and
breakpoints that hold only nodes about to start, continue-as-new for long graphs, agent nodes
whose child can be answered."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from config import Settings
from tests.helpers import eventually
from tests.integration.graphs import graph_state, start_graph
from workflows.agent import AgentWorkflow
from workflows.graph import GraphWorkflow
from workflows.state import (
    AgentState,
    ApprovalDecision,
    GraphState,
    NodeStatus,
    RunStatus,
    UserInput,
)


def node(state: GraphState, node_id: str) -> Any:
    return next(n for n in state.nodes if n.id == node_id)


def ask(node_id: str, question: str = "What now?", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "human_input", "config": {"question": question}, **extra}


def setter(node_id: str, **values: str) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"set": values or {"x": "1"}}}


def graph(nodes: list[dict[str, Any]], edges: list[tuple[str, str]], **extra: Any) -> dict:  # type: ignore[type-arg]
    return {
        "name": "g",
        "entry": nodes[0]["id"],
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in edges],
        **extra,
    }


async def test_a_question_that_times_out_fails_the_run_with_why(
    client: Client, settings: Settings, worker
):
    spec = graph([ask("ask", timeout_s=1), setter("after")], [("ask", "after")])
    async with worker():
        handle = await start_graph(client, settings, spec, {})
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        state = await graph_state(handle)
    message = str(failed.value.cause)
    assert "no input arrived for node 'ask' within 1 seconds" in message
    assert "internal error" not in message
    assert state.status is RunStatus.FAILED and node(state, "ask").status is NodeStatus.FAILED
    assert state.questions == [] and state.question is None


async def test_a_question_that_times_out_can_be_handled_by_a_failure_edge(
    client: Client, settings: Settings, worker
):
    spec = graph([ask("ask"), setter("fallback", why="ask.metadata.error")], [])
    spec["edges"] = [{"source": "ask", "target": "fallback", "on": "failure"}]
    async with worker():
        handle = await start_graph(client, settings, spec, {}, input_timeout_s=1)
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.variables["vars"]["why"].startswith("no input arrived for node 'ask'")


async def test_pause_while_a_question_waits_and_a_branch_runs_never_blocks_the_answer(
    client: Client, settings: Settings, worker
):
    spec = graph(
        [
            setter("start"),
            ask("ask"),
            {"id": "work", "type": "tool", "config": {"tool": "wait", "args": {"seconds": "3"}}},
            setter("after_work"),
            setter("end"),
        ],
        [("start", "ask"), ("start", "work"), ("work", "after_work"), ("ask", "end")],
    )
    spec["edges"].append({"source": "after_work", "target": "end"})
    async with worker():
        handle = await start_graph(client, settings, spec, {})
        await eventually(lambda: graph_state(handle), lambda s: s.waiting_node == "ask")
        await handle.signal(GraphWorkflow.pause)
        held = await eventually(
            lambda: graph_state(handle),
            lambda s: node(s, "work").status is NodeStatus.COMPLETED,
        )
        # The branch's next node is held; the question still waits, and the run says so.
        assert held.paused and node(held, "after_work").status is NodeStatus.CREATED
        assert held.status is RunStatus.WAITING_FOR_INPUT
        await handle.signal(GraphWorkflow.resume)
        await eventually(
            lambda: graph_state(handle),
            lambda s: node(s, "after_work").status is NodeStatus.COMPLETED,
        )
        await handle.execute_update(GraphWorkflow.submit_input, UserInput(text="go on"))
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.variables["ask"]["value"] == {"text": "go on"}


async def test_a_skipped_chain_of_a_thousand_nodes_completes(
    client: Client, settings: Settings, worker
):
    chain = [setter(f"n{k}") for k in range(997)]
    spec = graph(
        [{"id": "gate", "type": "condition", "config": {"expression": "false"}}, *chain],
        [("gate", "n0")] + [(f"n{k}", f"n{k + 1}") for k in range(996)],
    )
    spec["nodes"].append(setter("other"))
    spec["edges"][0]["when"] = "gate.value"
    spec["edges"].append({"source": "gate", "target": "other"})
    async with worker():
        state = await (await start_graph(client, settings, spec, {})).result()
    assert state.status is RunStatus.COMPLETED
    assert node(state, "n996").status is NodeStatus.SKIPPED
    assert list(state.outputs) == ["other"]


async def test_several_questions_wait_at_once_each_answered_by_its_node_id(
    client: Client, settings: Settings, worker
):
    spec = graph(
        [setter("start"), ask("budget", "Budget?"), ask("dates", "Dates?"), setter("plan")],
        [("start", "budget"), ("start", "dates"), ("budget", "plan"), ("dates", "plan")],
    )
    async with worker():
        handle = await start_graph(client, settings, spec, {})
        both = await eventually(lambda: graph_state(handle), lambda s: len(s.questions) == 2)
        assert both.status is RunStatus.WAITING_FOR_INPUT
        assert [(q.node_id, q.question) for q in both.questions] == [
            ("budget", "Budget?"),
            ("dates", "Dates?"),
        ]
        with pytest.raises(WorkflowUpdateFailedError) as which:
            await handle.execute_update(GraphWorkflow.submit_input, UserInput(text="2000"))
        assert "say which one with node_id" in str(which.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update(
                GraphWorkflow.submit_input, UserInput(text="x", node_id="plan")
            )
        assert "node 'plan' is not waiting" in str(unknown.value.cause)
        await handle.execute_update(
            GraphWorkflow.submit_input, UserInput(text="May", node_id="dates")
        )
        one = await eventually(lambda: graph_state(handle), lambda s: len(s.questions) == 1)
        assert one.status is RunStatus.WAITING_FOR_INPUT and one.waiting_node == "budget"
        await handle.signal(GraphWorkflow.provide_input, {"text": "2000"})  # the one left
        state = await handle.result()
    assert state.variables["dates"]["value"] == {"text": "May"}
    assert state.variables["budget"]["value"] == {"text": "2000"}


async def test_breakpoints_pause_before_a_node_and_step_runs_exactly_one(
    client: Client, settings: Settings, worker
):
    spec = graph([setter("a"), setter("b"), setter("c"), setter("d")], [("a", "b"), ("b", "c")])
    spec["edges"].append({"source": "c", "target": "d"})
    async with worker():
        handle = await start_graph(client, settings, spec, {}, breakpoints=["b"])
        held = await eventually(lambda: graph_state(handle), lambda s: s.status is RunStatus.PAUSED)
        assert node(held, "a").status is NodeStatus.COMPLETED
        assert node(held, "b").status is NodeStatus.CREATED
        assert any(e.message == "breakpoint before b" for e in held.events)
        await handle.signal(GraphWorkflow.step)
        stepped = await eventually(
            lambda: graph_state(handle),
            lambda s: node(s, "b").status is NodeStatus.COMPLETED and s.status is RunStatus.PAUSED,
        )
        assert node(stepped, "c").status is NodeStatus.CREATED
        await handle.signal(GraphWorkflow.resume)
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED and node(state, "d").status is NodeStatus.COMPLETED


def counting_loop(last: int, tool: bool) -> dict:  # type: ignore[type-arg]
    """start -> count (-> calc) -> back to count while i < last, then done."""
    body = "calc" if tool else "count"
    spec = graph(
        [setter("start", i="0"), setter("count", i="vars.i + 1"), setter("done")],
        [("start", "count"), ("count", "done")],
        max_steps=10_000,
    )
    if tool:
        calc = {"tool": "calculator", "args": {"expression": 'string(vars.i) + " * 2"'}}
        spec["nodes"].append({"id": "calc", "type": "tool", "config": calc})
    spec["edges"] = [
        {"source": "start", "target": "count"},
        *([{"source": "count", "target": "calc"}] if tool else []),
        {"source": body, "target": "count", "when": f"vars.i < {last}"},
        {"source": body, "target": "done", "when": f"vars.i >= {last}"},
    ]
    return spec


async def test_a_loop_of_5000_steps_completes_with_a_bounded_history(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_graph(client, settings, counting_loop(4998, tool=False), {})
        state = await handle.result()
        history = await handle.fetch_history()
    assert state.status is RunStatus.COMPLETED and state.variables["vars"]["i"] == 4998
    assert state.steps == 5000 and node(state, "count").runs == 4998
    # Nodes evaluated by the workflow cost no event each: one hand-back per 20 of them.
    assert len(history.events) < 400


async def test_a_long_loop_of_activities_continues_as_new_with_a_bounded_history(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_graph(
            client, settings, counting_loop(60, tool=True), {}, history_threshold=150
        )
        state = await handle.result()
        runs = await eventually(
            lambda: _runs(client, handle.id), lambda runs: len(runs) == state.continued_as_new + 1
        )
    assert state.status is RunStatus.COMPLETED and state.variables["vars"]["i"] == 60
    assert state.steps == 122 and node(state, "calc").runs == 60
    assert state.variables["calc"]["value"]["result"] == "60 * 2 = 120"
    assert state.continued_as_new >= 2
    # Each run stops soon after the threshold: the next node starts in the next run.
    assert max(r.history_length for r in runs) < 150 + 60, [r.history_length for r in runs]
    # One event stream across the runs: offsets go on from run to run.
    assert state.final_stream is not None and state.final_stream.base_offset == 0
    assert len(state.final_stream.log) > 122 * 3


async def _runs(client: Client, workflow_id: str) -> list[Any]:
    return [r async for r in client.list_workflows(f"WorkflowId = '{workflow_id}'")]


async def test_a_question_open_across_continue_as_new_is_still_answerable(
    client: Client, settings: Settings, worker
):
    spec = counting_loop(30, tool=True)
    spec["nodes"] += [ask("ask"), setter("end")]
    spec["edges"] += [
        {"source": "start", "target": "ask"},
        {"source": "ask", "target": "end"},
        {"source": "done", "target": "end"},
    ]
    async with worker():
        handle = await start_graph(client, settings, spec, {}, history_threshold=80)
        carried = await eventually(
            lambda: graph_state(handle),
            lambda s: s.continued_as_new >= 1 and node(s, "done").status is NodeStatus.COMPLETED,
        )
        assert carried.waiting_node == "ask" and carried.status is RunStatus.WAITING_FOR_INPUT
        await handle.execute_update(GraphWorkflow.submit_input, UserInput(text="done"))
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.variables["ask"]["value"] == {"text": "done"}
    assert node(state, "ask").runs == 1  # one question, asked once, across the runs


async def test_an_agent_node_names_its_child_at_once_and_the_child_can_be_answered(
    client: Client, settings: Settings, worker
):
    spec = graph(
        [{"id": "trip", "type": "agent", "config": {"query": "Plan my trip to {{ input.city }}"}}],
        [],
    )
    async with worker():
        handle = await start_graph(client, settings, spec, {"city": "Lisbon"}, tenant="acme")
        running = await eventually(
            lambda: graph_state(handle), lambda s: node(s, "trip").child_run_id is not None
        )
        child_id = node(running, "trip").child_run_id
        assert any(e.message == f"trip started agent run {child_id}" for e in running.events)
        child = client.get_workflow_handle_for(AgentWorkflow.run, child_id)
        asked: AgentState = await eventually(
            lambda: child.query(AgentWorkflow.get_state),
            lambda s: s.status is RunStatus.WAITING_FOR_INPUT,
        )
        assert asked.tenant == "acme"
        described = await child.describe()
        assert described.typed_search_attributes  # the child is listed like any run
        await child.execute_update(AgentWorkflow.submit_input, UserInput(text="Museums, in May"))
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert "May" in str(state.outputs["trip"]["value"]["answer"])


def note_graph() -> dict:  # type: ignore[type-arg]
    """A tool node calling `append_note` (its policy: a person approves each call)."""
    spec = graph(
        [
            {
                "id": "note",
                "type": "tool",
                "config": {"tool": "append_note", "args": {"text": "'graph ' + input.word"}},
            },
            setter("after", result="note.value.result"),
            setter("refused", why="note.metadata.error"),
        ],
        [("note", "after")],
    )
    spec["edges"].append({"source": "note", "target": "refused", "on": "failure"})
    return spec


async def test_a_tool_node_waits_for_approval_and_runs_once_approved(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_graph(client, settings, note_graph(), {"word": "yes"})
        held = await eventually(
            lambda: graph_state(handle), lambda s: s.status is RunStatus.WAITING_FOR_APPROVAL
        )
        [request] = held.approvals
        assert (request.tool, request.node_id) == ("append_note", "note")
        assert request.arguments == {"text": "graph yes"}
        assert node(held, "note").status is NodeStatus.EXECUTING
        assert not settings.notes_file.exists()  # nothing ran before the decision
        await handle.execute_update(
            GraphWorkflow.submit_approval, ApprovalDecision(approval_id=request.id, approve=True)
        )
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert node(state, "refused").status is NodeStatus.SKIPPED
    assert "graph yes" in settings.notes_file.read_text()
    assert state.tools is not None and any(t.name == "append_note" for t in state.tools.tools)


async def test_a_denied_tool_node_never_calls_its_tool(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_graph(client, settings, note_graph(), {"word": "no"})
        held = await eventually(lambda: graph_state(handle), lambda s: bool(s.approvals))
        await handle.signal(
            GraphWorkflow.decide_approval,
            {"approval_id": held.approvals[0].id, "approve": False, "reason": "not today"},
        )
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert node(state, "note").status is NodeStatus.FAILED
    assert state.variables["vars"]["why"] == (
        "the call of append_note was denied by a person: not today; it did not run"
    )
    assert not settings.notes_file.exists()
