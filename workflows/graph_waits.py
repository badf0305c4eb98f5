"""Waiting in a graph run belongs to its nodes: the open questions (several at once, each
answered by its node id through the `submit_input` update or the `provide_input` signal), and
the run's status derived from what its nodes do. Also what a node may change of its run."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from activities.tools.catalog import ListToolsInput, ToolCatalog, ToolSpec
from workflows import timeouts
from workflows.execution import execute
from workflows.node_kinds import NodeFailed
from workflows.patches import GRAPH_TOOL_APPROVALS, LOCAL_TOOL_LISTING
from workflows.run_control import InputProblem, RunControl, failure_message
from workflows.state import (
    TERMINAL_STATUSES,
    ApprovalRequest,
    ApprovalStatus,
    GraphInput,
    GraphState,
    NodeState,
    NodeStatus,
    OpenQuestion,
    RunStatus,
    UserInput,
)


class NodeWaits(RunControl):
    _state: GraphState
    _tasks: dict[str, asyncio.Task[None]]  # started nodes whose end was not yet handled
    _finished: list[tuple[str, str | None]]  # nodes that ended, not yet handled
    answers: dict[str, str]  # accepted answers, by node id, until the node takes them
    v2: bool
    inp: GraphInput
    _listing: asyncio.Task[None] | None = None  # the tool listing, shared by parallel nodes

    def _refresh_status(self, message: str = "") -> None:
        """Running while any node works; else waiting for approval when a tool node's call
        waits for a decision, waiting for input when a node waits for an answer; paused when
        nodes are held and none works or waits. (Runs started before v2 showed a waiting
        question first, whatever else ran; they replay so.)"""
        state = self._state
        if state.status in (RunStatus.PENDING, *TERMINAL_STATUSES):
            return
        asking = {q.node_id for q in state.questions}
        approving = {
            a.node_id for a in state.approvals if a.status is ApprovalStatus.PENDING and a.node_id
        }
        done = {node_id for node_id, _ in self._finished}
        waiting = asking | approving
        status = RunStatus.RUNNING
        if self.v2 and any(n not in waiting and n not in done for n in self._tasks):
            status = RunStatus.RUNNING
        elif approving:
            status = RunStatus.WAITING_FOR_APPROVAL
        elif asking:
            status = RunStatus.WAITING_FOR_INPUT
        elif self._held:
            status = RunStatus.PAUSED
        if approving:
            pending = (a for a in state.approvals if a.status is ApprovalStatus.PENDING)
            state.waiting_since = min(a.requested_at for a in pending)
        else:
            self._show_first_question()
        if status is not state.status:
            self._update_status(run=status, message=message)

    def _on_hold_change(self, message: str) -> None:
        self._refresh_status(message)

    def _approvals_changed(self, message: str) -> None:
        self._refresh_status(message)

    def open_question(self, asked: OpenQuestion) -> None:
        self._state.questions.append(asked)
        self._show_first_question()
        self._refresh_status(message=asked.question)
        self._log_event("question", asked.question, question=asked.question, node_id=asked.node_id)

    def close_question(self, node_id: str) -> None:
        self._state.questions = [q for q in self._state.questions if q.node_id != node_id]
        self._show_first_question()

    def _show_first_question(self) -> None:
        state = self._state
        first = state.questions[0] if state.questions else None
        state.question = first.question if first else None
        state.waiting_node = first.node_id if first else None
        state.waiting_since = first.asked_at if first else None

    def _input_problem(self, payload: UserInput) -> InputProblem | None:
        waiting = [q.node_id for q in self._state.questions]
        if payload.node_id is None and len(waiting) > 1:
            which = f"{len(waiting)} nodes wait for input ({', '.join(waiting)})"
            return InputProblem("InvalidInput", f"{which}; say which one with node_id", "node_id")
        if payload.node_id is not None and payload.node_id not in waiting:
            listed = f"; waiting: {', '.join(waiting)}" if waiting else ""
            message = f"node {payload.node_id!r} is not waiting for input{listed}"
            return InputProblem("InvalidState", message, "node_id")
        if not waiting:
            status = self._state.status.value
            return InputProblem("InvalidState", f"the run is {status}, not waiting for input")
        return self._text_problem(payload.text)

    def _accept_input(self, payload: UserInput) -> None:
        node_id = payload.node_id or self._state.questions[0].node_id
        self.answers[node_id] = payload.text.strip()
        self.close_question(node_id)
        self._refresh_status("input received")

    # ---- what a node may change of its run ---------------------------------------------------

    async def tool_catalog(self) -> list[ToolSpec] | None:
        """The tools this run may call (with their approval policies), listed once by an
        activity whose result the run keeps, so a replay never asks a server again. Runs
        before it list nothing, and no call of theirs waits for approval."""
        if self._state.tools is None and self._patched(GRAPH_TOOL_APPROVALS):
            if self._listing is None:
                self._listing = asyncio.create_task(self._list_tools())
            # Shielded: the listing is shared by parallel nodes, and a node cancelled while it
            # runs must stop at once. Awaited bare, a cancel that arrived as the listing
            # activity completed was swallowed by it, and the node went on to call its tool.
            await asyncio.shield(self._listing)
        return self._state.tools.tools if self._state.tools is not None else None

    async def _list_tools(self) -> None:
        config: workflow.ActivityConfig = {**timeouts.TOOL_LISTING, "summary": "list-tools"}
        try:
            catalog = await execute(
                "list_tools",
                ListToolsInput(),
                execution="local"
                if self._patched(LOCAL_TOOL_LISTING)
                else self.inp.spec.execution or "remote",
                config=config,
                result_type=ToolCatalog,
            )
        except ActivityError as exc:
            raise NodeFailed(f"listing the tools failed: {failure_message(exc)}") from None
        self._state.tools = catalog
        for server, reason in catalog.unavailable.items():
            self._log_event("control", f"MCP server {server} left out: {reason}")

    def expire_approval(self, request: ApprovalRequest) -> None:
        """No decision came (in time, or before the run was cancelled)."""
        if request.status is ApprovalStatus.PENDING:
            request.status = ApprovalStatus.EXPIRED
            request.decided_at = workflow.now()
            self._log_approval(request)
            self._refresh_status("approval expired")

    @property
    def state(self) -> GraphState:
        return self._state

    def set_node(self, node: NodeState, status: NodeStatus, error: str | None = None) -> None:
        self._update_status(node=node, node_status=status, error=error)

    def log_event(self, kind: str, text: str, **data: Any) -> None:
        self._log_event(kind, text, **data)
