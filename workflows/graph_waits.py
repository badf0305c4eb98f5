"""Waiting in a graph run belongs to its nodes: the open questions (several at once, each
answered by its node id through the `submit_input` update or the `provide_input` signal), and
the run's status derived from what its nodes do. Also what a node may change of its run."""

from __future__ import annotations

import asyncio
from typing import Any

from workflows.run_control import InputProblem, RunControl
from workflows.state import (
    TERMINAL_STATUSES,
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

    def _refresh_status(self, message: str = "") -> None:
        """Running while any node works; waiting for input when a node waits and none works;
        paused when nodes are held and none works or waits. (Runs started before v2 showed a
        waiting question first, whatever else ran; they replay so.)"""
        state = self._state
        if state.status in (RunStatus.PENDING, *TERMINAL_STATUSES):
            return
        waiting = {q.node_id for q in state.questions}
        done = {node_id for node_id, _ in self._finished}
        status = RunStatus.RUNNING
        if self.v2 and any(n not in waiting and n not in done for n in self._tasks):
            status = RunStatus.RUNNING
        elif waiting:
            status = RunStatus.WAITING_FOR_INPUT
        elif self._held:
            status = RunStatus.PAUSED
        if status is not state.status:
            self._update_status(run=status, message=message)

    def _on_hold_change(self, message: str) -> None:
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

    @property
    def state(self) -> GraphState:
        return self._state

    def set_node(self, node: NodeState, status: NodeStatus, error: str | None = None) -> None:
        self._update_status(node=node, node_status=status, error=error)

    def log_event(self, kind: str, text: str, **data: Any) -> None:
        self._log_event(kind, text, **data)
