"""Re-record the histories in tests/histories/ (after a deliberate change to a workflow).

    make record-histories

Starts its own dev server and worker, runs each scenario to its end and stores the history of
every run. Commit the new files together with the workflow change (and a `workflow.patched`
guard if runs started on the old code must still finish).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from activities.llm import OfflineProvider
from activities.models import Intent, IntentInput, IntentOutput, PlanInput, PlanOutput
from config import PROJECT_ROOT, Settings
from devstack.processes import dev_server_command, free_port, port_open, start, stop, wait_until
from shared import RUN_KIND, RUN_STAGE, RUN_STATUS
from temporal_client import connect, ensure_search_attributes
from worker import build_worker
from workflows.agent import AgentWorkflow
from workflows.agent_spec import AgentDefinition, validate_agent
from workflows.graph import GraphWorkflow
from workflows.graph_spec import validate
from workflows.state import (
    AgentInput,
    AgentState,
    ApprovalDecision,
    GraphInput,
    RunStatus,
    UserInput,
)

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
AGENTS = PROJECT_ROOT / "agents"
RECORDER_TOOLS = Path(__file__).resolve().parent / "tools.yaml"


class _BlankChat(OfflineProvider):
    """A model that calls everything small talk and says nothing (as SmolLM2 did)."""

    async def classify(self, req: IntentInput) -> IntentOutput:
        return IntentOutput(intent=Intent.SIMPLE_CHAT, answer="")


class _BrokenPlanner(OfflineProvider):
    async def plan(self, req: PlanInput) -> PlanOutput:
        raise ApplicationError(
            "planner is misconfigured", type="ConfigurationError", non_retryable=True
        )


async def _start(
    client: Client, tq: str, query: str, signal: str | None = None, **limits: Any
) -> WorkflowHandle[Any, AgentState]:
    return await client.start_workflow(
        AgentWorkflow.run,
        AgentInput(query=query, **limits),
        id=f"replay-{uuid.uuid4().hex}",
        task_queue=tq,
        start_signal=signal,
    )


async def _until(handle: WorkflowHandle[Any, Any], status: RunStatus) -> None:
    for _ in range(300):
        state: AgentState = await handle.query(AgentWorkflow.get_state)
        if state.status is status:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{handle.id} never reached {status.value}")


async def _finish(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await handle.result()
    except Exception:  # failed and cancelled runs are scenarios too
        pass


async def chat(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _start(c, tq, "hello")


async def calculator(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _start(c, tq, "What is 17 * 23?")


async def calculator_patched(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # Recorded after the `skip-calculation-reflection` change (it carries the patch marker).
    return await _start(c, tq, "What is 19 * 21?")


async def search_docs(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _start(c, tq, "How does a run survive a worker crash?")


async def reflection_retry(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _start(c, tq, "Explain in detail how a run survives a worker crash")


async def input_by_update(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    h = await _start(c, tq, "Plan my trip to Lisbon")
    await _until(h, RunStatus.WAITING_FOR_INPUT)
    await h.execute_update(AgentWorkflow.submit_input, UserInput(text="Three days in May"))
    return h


async def input_by_signal_after_malformed(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    h = await _start(c, tq, "Plan my trip to Lisbon")
    await _until(h, RunStatus.WAITING_FOR_INPUT)
    for payload in ({"wrong": 1}, {"text": ""}, 42):
        await h.signal("provide_input", payload)
    await h.signal("provide_input", {"text": "A weekend"})
    return h


async def pause_resume(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    h = await _start(c, tq, "What is 6 * 7?", signal="pause")
    await _until(h, RunStatus.PAUSED)
    await h.signal(AgentWorkflow.resume)
    return h


async def cancel_waiting(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    h = await _start(c, tq, "What is 1 / 0?")
    await _until(h, RunStatus.WAITING_FOR_INPUT)
    await h.cancel()
    return h


async def input_timeout(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _start(c, tq, "Plan my trip to Lisbon", input_timeout_s=1)


async def continue_as_new(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _start(c, tq, "What is 17 * 23?", history_threshold=1)


async def mcp_tool(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # Recorded after the `record-tool-catalog` change: the run lists its tools (an activity),
    # then calls an MCP tool (mcp-server-time over stdio) as its own activity.
    return await _start(c, tq, "What time is it in Tokyo?")


async def approval_denied(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # A tool whose policy is `approval: always`: the run waits, the call is denied by update
    # (never runs), the denial goes to the next round, which asks the user.
    h = await _start(c, tq, "Look up order 42")
    await _until(h, RunStatus.WAITING_FOR_APPROVAL)
    await h.execute_update(
        AgentWorkflow.submit_approval,
        ApprovalDecision(approval_id="approval-1", approve=False, reason="not now"),
    )
    await _until(h, RunStatus.WAITING_FOR_INPUT)
    await h.execute_update(AgentWorkflow.submit_input, UserInput(text="It is the blue teapot"))
    return h


async def approval_by_signal(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # Approved by the `decide_approval` signal, after malformed ones (logged and dropped).
    h = await _start(c, tq, "Look up order 42")
    await _until(h, RunStatus.WAITING_FOR_APPROVAL)
    await h.signal("decide_approval", args=[])
    await h.signal("decide_approval", {"approval_id": "approval-9", "approve": True})
    await h.signal("decide_approval", {"approval_id": "approval-1", "approve": True})
    return h


async def chat_checked(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # Recorded after the worker began checking queries (`check-query-in-worker` marker), with
    # malformed signals of every arity.
    h = await _start(c, tq, "Plan my trip to Lisbon")
    await _until(h, RunStatus.WAITING_FOR_INPUT)
    await h.signal("provide_input", args=[])
    await h.signal("provide_input", args=[{"text": "a"}, {"text": "b"}])
    await h.signal("pause", args=["now"])  # arguments to pause/resume are ignored
    await h.signal("resume", args=[1, 2])
    await h.signal("provide_input", {"text": "A weekend"})
    return h


async def input_by_signal_with_id(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # The gateway's way since input became a signal: one input id, sent twice (a retry).
    h = await _start(c, tq, "Plan my trip to Lisbon")
    await _until(h, RunStatus.WAITING_FOR_INPUT)
    for _ in range(2):
        await h.signal("provide_input", {"text": "Three days in May", "input_id": "input-1"})
    return h


def _definition(name: str) -> AgentDefinition:
    checked = validate_agent(yaml.safe_load((AGENTS / f"{name}.yaml").read_text()), None)
    assert checked.definition is not None, checked.problems
    return checked.definition


async def extractor_definition(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # A pinned agent definition: no tools, no reflection, a structured answer.
    agent = _definition("extractor")
    h = await _start(
        c, tq, "Summarise how durable runs survive a crash", agent=agent, max_context_rounds=1
    )
    await _until(h, RunStatus.WAITING_FOR_INPUT)  # no tools: only the user can tell it
    await h.execute_update(AgentWorkflow.submit_input, UserInput(text="The worker replays."))
    return h


async def support_definition(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # The support agent's own approval: calculator calls wait for a person (approved here).
    h = await _start(c, tq, "What is 6 * 7?", agent=_definition("support"))
    await _until(h, RunStatus.WAITING_FOR_APPROVAL)
    state: AgentState = await h.query(AgentWorkflow.get_state)
    await h.signal(
        "decide_approval", ApprovalDecision(approval_id=state.approvals[0].id, approve=True)
    )
    return h


async def _as_the_gateway(
    c: Client, tq: str, inp: AgentInput, baseline: int = 1
) -> WorkflowHandle[Any, Any]:
    # Search attributes set at start, as the gateway sets them: the run upserts only changes.
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(RUN_STATUS, "pending"),
            SearchAttributePair(RUN_KIND, "agent"),
            SearchAttributePair(RUN_STAGE, "intent"),
        ]
    )
    return await c.start_workflow(
        AgentWorkflow.run,
        inp.model_copy(update={"baseline": baseline}),
        id=f"replay-{uuid.uuid4().hex}",
        task_queue=tq,
        search_attributes=attributes,
    )


async def lean_calculator(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    return await _as_the_gateway(c, tq, AgentInput(query="What is 12 * 13?"))


async def fast_calculator(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # Fast mode: every stage and tool call a local activity.
    agent = AgentDefinition(name="fast", execution="local")
    return await _as_the_gateway(c, tq, AgentInput(query="What is 14 * 15?", agent=agent))


async def baseline2_calculator(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    # Baseline 2: the tools listed by a local activity.
    return await _as_the_gateway(c, tq, AgentInput(query="What is 16 * 17?"), baseline=2)


SCENARIOS: dict[str, Callable[[Client, str], Awaitable[WorkflowHandle[Any, Any]]]] = {
    f.__name__: f
    for f in (
        chat,
        calculator,
        calculator_patched,
        search_docs,
        reflection_retry,
        input_by_update,
        input_by_signal_after_malformed,
        pause_resume,
        cancel_waiting,
        input_timeout,
        continue_as_new,
        chat_checked,
        mcp_tool,
        approval_denied,
        approval_by_signal,
        input_by_signal_with_id,
        extractor_definition,
        support_definition,
        lean_calculator,
        fast_calculator,
        baseline2_calculator,
    )
}


async def _graph(
    c: Client, tq: str, name: str, graph_input: dict[str, Any], answer: str | None = None
) -> WorkflowHandle[Any, Any]:
    data = yaml.safe_load((PROJECT_ROOT / "graphs" / f"{name}.yaml").read_text())
    spec = validate(data, ["calculator", "search_docs"]).spec
    assert spec is not None
    h = await c.start_workflow(
        GraphWorkflow.run,
        GraphInput(spec=spec, input=graph_input),
        id=f"replay-graph-{uuid.uuid4().hex}",
        task_queue=tq,
    )
    if answer is not None:
        for _ in range(300):
            state = await h.query(GraphWorkflow.get_state)
            if state.status is RunStatus.WAITING_FOR_INPUT:
                break
            await asyncio.sleep(0.05)
        await h.execute_update(GraphWorkflow.submit_input, UserInput(text=answer))
    return h


async def _inline_graph(c: Client, tq: str, spec: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    return await c.start_workflow(
        "GraphWorkflow",
        {"spec": spec, "input": {}},
        id=f"replay-graph-{uuid.uuid4().hex}",
        task_queue=tq,
    )


# A transform looping 50 times: the workflow yields to Temporal every 20 of them.
INLINE_LOOP = {
    "name": "inline_loop",
    "entry": "count",
    "max_steps": 100,
    "nodes": [
        {
            "id": "count",
            "type": "transform",
            "config": {"set": {"n": "has(vars.n) ? vars.n + 1 : 1"}},
        },
        {"id": "done", "type": "condition", "config": {"expression": "vars.n"}},
    ],
    "edges": [
        {"source": "count", "target": "count", "when": "vars.n < 50"},
        {"source": "count", "target": "done", "when": "vars.n >= 50"},
    ],
}
# 24 parallel tool calls: at most 16 run at once.
PARALLEL = {
    "name": "parallel",
    "entry": "start",
    "nodes": [{"id": "start", "type": "condition", "config": {"expression": "true"}}]
    + [
        {
            "id": f"c{i}",
            "type": "tool",
            "config": {"tool": "calculator", "args": {"expression": f"'{i} * 2'"}},
        }
        for i in range(24)
    ],
    "edges": [{"source": "start", "target": f"c{i}"} for i in range(24)],
}
# Over its limits: the worker fails it once, at its start.
UNRUNNABLE = {
    "name": "unrunnable",
    "entry": "check",
    "nodes": [
        {
            "id": "check",
            "type": "condition",
            "config": {"expression": "+".join(["1"] * 3000) + " > 0"},
        }
    ],
}


FAST_TOOLS: dict[str, Any] = {
    "name": "fast_tools",
    "entry": "sum",
    "execution": "local",
    "nodes": [
        {
            "id": "sum",
            "type": "tool",
            "config": {"tool": "calculator", "args": {"expression": '"2 + 3"'}},
        },
        {
            "id": "remote",
            "type": "tool",
            "execution": "remote",
            "config": {"tool": "calculator", "args": {"expression": '"4 * 5"'}},
        },
        {"id": "say", "type": "llm", "config": {"prompt": "Sum {{ sum.value.result }}"}},
    ],
    "edges": [{"source": "sum", "target": "remote"}, {"source": "remote", "target": "say"}],
}


def _ask(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "human_input", "config": {"question": f"{node_id}?"}, **extra}


def _set(node_id: str, expression: str = "1") -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"set": {node_id: expression}}}


def _edges(*pairs: str) -> list[dict[str, Any]]:
    return [{"source": p.split(">")[0], "target": p.split(">")[1]} for p in pairs]


async def _graph_state(h: WorkflowHandle[Any, Any], done: Callable[[Any], bool]) -> Any:
    for _ in range(600):
        state = await h.query(GraphWorkflow.get_state)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{h.id} never reached the state awaited")


async def _start_graph(
    c: Client, tq: str, spec: dict[str, Any], workflow_id: str | None = None, **options: Any
) -> WorkflowHandle[Any, Any]:
    checked = validate(spec, ["calculator", "search_docs", "append_note"])
    assert checked.spec is not None, checked.problems
    return await c.start_workflow(
        GraphWorkflow.run,
        GraphInput(spec=checked.spec, **options),
        id=workflow_id or f"replay-graph-{uuid.uuid4().hex}",
        task_queue=tq,
    )


async def questions_by_node(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    """Two questions open at once; a pause and resume meanwhile; answered by node id."""
    spec = {
        "name": "two_questions",
        "entry": "start",
        "nodes": [_set("start"), _ask("budget"), _ask("dates"), _set("plan")],
        "edges": _edges("start>budget", "start>dates", "budget>plan", "dates>plan"),
    }
    h = await _start_graph(c, tq, spec)
    await _graph_state(h, lambda s: len(s.questions) == 2)
    await h.signal(GraphWorkflow.pause)
    await h.execute_update(GraphWorkflow.submit_input, UserInput(text="May", node_id="dates"))
    await _graph_state(h, lambda s: len(s.questions) == 1)
    await h.signal(GraphWorkflow.resume)
    await h.signal(GraphWorkflow.provide_input, {"text": "2000", "node_id": "budget"})
    return h


async def breakpoint_step(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    spec = {
        "name": "stepped",
        "entry": "a",
        "nodes": [_set("a"), _set("b"), _set("c")],
        "edges": _edges("a>b", "b>c"),
    }
    h = await _start_graph(c, tq, spec, breakpoints=["b"])
    await _graph_state(h, lambda s: s.status is RunStatus.PAUSED)
    await h.signal(GraphWorkflow.step)
    await _graph_state(h, lambda s: s.variables.get("b") and s.status is RunStatus.PAUSED)
    await h.signal(GraphWorkflow.resume)
    return h


# A question that times out, handled by a failure edge.
QUESTION_TIMEOUT = {
    "name": "question_timeout",
    "entry": "ask",
    "nodes": [_ask("ask", timeout_s=1), _set("fallback", "ask.metadata.error")],
    "edges": [{"source": "ask", "target": "fallback", "on": "failure"}],
}
# A loop of tool calls that continues as new twice or more (history_threshold is low).
TOOL_LOOP = {
    "name": "tool_loop",
    "entry": "count",
    "max_steps": 100,
    "nodes": [
        {
            "id": "count",
            "type": "transform",
            "config": {"set": {"i": "has(vars.i) ? vars.i + 1 : 1"}},
        },
        {
            "id": "calc",
            "type": "tool",
            "config": {"tool": "calculator", "args": {"expression": "string(vars.i) + ' * 2'"}},
        },
        _set("done"),
    ],
    "edges": [
        *_edges("count>calc"),
        {"source": "calc", "target": "count", "when": "vars.i < 20"},
        {"source": "calc", "target": "done", "when": "vars.i >= 20"},
    ],
}


async def agent_child(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    spec = {
        "name": "with_agent",
        "entry": "trip",
        "nodes": [{"id": "trip", "type": "agent", "config": {"query": "Plan my trip to Lisbon"}}],
    }
    # Replay runs a history under its file's name, and the child's id derives from the run's.
    h = await _start_graph(c, tq, spec, workflow_id="graph_agent_child")
    state = await _graph_state(h, lambda s: s.nodes[0].child_run_id is not None)
    child = c.get_workflow_handle(state.nodes[0].child_run_id)
    for _ in range(300):
        if (await child.query(AgentWorkflow.get_state)).status is RunStatus.WAITING_FOR_INPUT:
            break
        await asyncio.sleep(0.05)
    await child.execute_update(AgentWorkflow.submit_input, UserInput(text="Museums"))
    return h


async def tool_denied(c: Client, tq: str) -> WorkflowHandle[Any, Any]:
    """A tool node held for approval (append_note's policy), denied: the call never runs."""
    spec = {
        "name": "note",
        "entry": "note",
        "nodes": [
            {
                "id": "note",
                "type": "tool",
                "config": {"tool": "append_note", "args": {"text": "'x'"}},
            },
            _set("refused", "note.metadata.error"),
        ],
        "edges": [{"source": "note", "target": "refused", "on": "failure"}],
    }
    h = await _start_graph(c, tq, spec)
    state = await _graph_state(h, lambda s: bool(s.approvals))
    await h.signal(
        GraphWorkflow.decide_approval,
        {"approval_id": state.approvals[0].id, "approve": False, "reason": "no"},
    )
    return h


GRAPH_SCENARIOS: dict[str, Callable[[Client, str], Awaitable[WorkflowHandle[Any, Any]]]] = {
    "triage": lambda c, tq: _graph(c, tq, "triage", {"ticket": "refund please"}),
    # Recorded after the worker began enforcing limits (`enforce-limits-in-worker` marker).
    "triage_limits": lambda c, tq: _graph(c, tq, "triage", {"ticket": "I was charged twice"}),
    "inline_loop": lambda c, tq: _inline_graph(c, tq, INLINE_LOOP),
    "parallel_bound": lambda c, tq: _inline_graph(c, tq, PARALLEL),
    "unrunnable": lambda c, tq: _inline_graph(c, tq, UNRUNNABLE),
    "draft_review_loop": lambda c, tq: _graph(c, tq, "draft_review", {"topic": "tea"}),
    "approval_input": lambda c, tq: _graph(c, tq, "approval", {"announcement": "v2"}, "yes"),
    # Recorded with the v2 engine (`graph-engine-v2`, `graph-continue-as-new` markers).
    "questions_by_node": questions_by_node,
    "breakpoint_step": breakpoint_step,
    "question_timeout": lambda c, tq: _start_graph(c, tq, QUESTION_TIMEOUT),
    "loop_continue_as_new": lambda c, tq: _start_graph(c, tq, TOOL_LOOP, history_threshold=60),
    "agent_child": agent_child,
    # Recorded with `graph-tool-approvals`.
    "tool_denied": tool_denied,
    # Search attributes set at start; fast mode (local activities) for the graph, one node not.
    "fast_tools": lambda c, tq: _start_graph(c, tq, FAST_TOOLS, baseline=1),
    # Baseline 2: the tools listed by a local activity, the nodes remote.
    "baseline2_tools": lambda c, tq: _start_graph(
        c, tq, {**FAST_TOOLS, "name": "baseline2_tools", "execution": "remote"}, baseline=2
    ),
}


async def record(address: str, only: set[str] | None = None) -> None:
    settings = Settings(
        temporal_address=address,
        task_queue=f"record-{uuid.uuid4().hex}",
        tools_file=RECORDER_TOOLS,
    )
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    HISTORIES.mkdir(exist_ok=True)
    async with build_worker(client, settings):
        for name, scenario in SCENARIOS.items():
            if only and name not in only:
                continue
            handle = await scenario(client, settings.task_queue)
            await _finish(handle)
            # The handle's run id is the first run's, so continue_as_new stores the hand-over.
            history = await client.get_workflow_handle(
                handle.id, run_id=handle.run_id
            ).fetch_history()
            (HISTORIES / f"agent_{name}.json").write_text(history.to_json())
            sys.stdout.write(f"recorded agent_{name}.json ({len(history.events)} events)\n")
        for name, graph_scenario in GRAPH_SCENARIOS.items():
            if only and name not in only:
                continue
            handle = await graph_scenario(client, settings.task_queue)
            await _finish(handle)
            # The first run's history (a continue-as-new is stored as its hand-over).
            history = await client.get_workflow_handle(
                handle.id, run_id=handle.result_run_id
            ).fetch_history()
            (HISTORIES / f"graph_{name}.json").write_text(history.to_json())
            sys.stdout.write(f"recorded graph_{name}.json ({len(history.events)} events)\n")
    if not only or "blank_chat_fallthrough" in only:
        tq = f"record-{uuid.uuid4().hex}"
        blank = settings.model_copy(update={"task_queue": tq})
        async with build_worker(client, blank, provider=_BlankChat()):
            handle = await _start(client, tq, "Tell me about durable runs")
            await _finish(handle)
            history = await handle.fetch_history()
            (HISTORIES / "agent_blank_chat_fallthrough.json").write_text(history.to_json())
            sys.stdout.write("recorded agent_blank_chat_fallthrough.json\n")
    if only and "activity_failure" not in only:
        return
    tq = f"record-{uuid.uuid4().hex}"
    settings = settings.model_copy(update={"task_queue": tq})
    async with build_worker(client, settings, provider=_BrokenPlanner()):
        handle = await _start(client, tq, "What is 3 * 3?")
        await _finish(handle)
        history = await handle.fetch_history()
        (HISTORIES / "agent_activity_failure.json").write_text(history.to_json())
        sys.stdout.write(f"recorded agent_activity_failure.json ({len(history.events)} events)\n")


def main() -> None:
    # `python -m tests.replay.record calculator_patched ...` records only those scenarios, so
    # histories of older code stay as they were recorded.
    only = set(sys.argv[1:]) or None
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start(dev_server_command(Path(tmp) / "t.db", "127.0.0.1", port, None))
        try:
            wait_until(
                lambda: port_open("127.0.0.1", port), timeout=30, what="dev server", proc=server
            )
            asyncio.run(record(f"127.0.0.1:{port}", only))
        finally:
            stop(server)


if __name__ == "__main__":
    main()
