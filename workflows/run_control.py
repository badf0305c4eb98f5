"""What every kind of run shares: the one status-update method, the event log and stream, and
the controls (input by update or signal, pause/resume). AgentWorkflow and GraphWorkflow inherit
it; Temporal registers the handlers of a base class like the class's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RawValue, SearchAttributeUpdate
from temporalio.contrib.workflow_streams import (
    WorkflowStream,
    WorkflowStreamState,
    WorkflowTopicHandle,
)
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from shared import RUN_STAGE, RUN_STATUS, StreamEvent
from workflows import run_metrics
from workflows.limits import text_problem
from workflows.patches import patched
from workflows.state import (
    MAX_INPUT_IDS,
    MAX_REASON_CHARS,
    RUN_TRANSITIONS,
    TERMINAL_STATUSES,
    ApprovalDecided,
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    InputAccepted,
    InputCheck,
    NodeState,
    NodeStatus,
    RunEvent,
    RunStateBase,
    RunStatus,
    Stage,
    UserInput,
    check_node_transition,
    check_run_transition,
    check_stage_transition,
)

InputT = TypeVar("InputT")
# Bytes of the event stream's tail a finished run keeps in its final state.
FINAL_STREAM_BYTES = 256 * 1024

# The event log travels in the state (and through continue-as-new); keep its tail only.
MAX_EVENTS = 500


@dataclass(frozen=True)
class InputProblem:
    """Why an input is refused: `type` InvalidState (not now) or InvalidInput (not this), and
    the payload's field at fault."""

    type: str
    message: str
    field: str = "text"


class RunFailure(Exception):
    """The run cannot go on; its message is what users read in `errors`."""


class RunControl:
    """Mixed into the workflow classes. Subclasses set `_state`, `_stream`, `_events` and
    `_max_input_chars` in their `@workflow.init`, and may override `_on_input`."""

    _state: Any  # a RunStateBase subclass
    _stream: WorkflowStream
    _events: WorkflowTopicHandle[StreamEvent]
    _max_input_chars: int
    # Held by a pause right now; and a `step` asked to hold again after the next start.
    _held = False
    _step_once = False
    # The run's baseline (`AgentInput.baseline`), and search attributes held back to go with
    # the next upsert.
    _baseline = 0
    _held_attributes: list[SearchAttributeUpdate[Any]] | None = None

    def _patched(self, patch_id: str) -> bool:
        return patched(patch_id, self._baseline)

    @property
    def _attributes_at_start(self) -> bool:
        """The starter set RunKind, RunStatus and RunStage (baseline 1 and later)."""
        return self._baseline >= 1

    # ---- updates and signals ---------------------------------------------------------------

    @workflow.update
    def submit_input(self, payload: UserInput) -> InputAccepted:
        self._take_input(payload)
        return InputAccepted(status=self._state.status)

    @workflow.query
    def check_input(self, payload: UserInput) -> InputCheck:
        """What `provide_input` would do with this payload now, without writing anything: the
        gateway checks with it, then signals (docs/durability.md says why not the update)."""
        status = self._state.status
        taken = self._state.inputs_taken.get(payload.input_id or "")
        if taken is not None:
            return InputCheck(taken=True, status=taken)
        problem = self._input_problem(payload)
        if problem is None:
            return InputCheck(status=status)
        return InputCheck(
            status=status,
            problem_type=problem.type,
            problem=problem.message,
            problem_field=problem.field,
        )

    @submit_input.validator
    def _validate_input(self, payload: UserInput) -> None:
        # Raising here rejects the update before anything is written to history.
        problem = self._input_problem(payload)
        if problem is not None:
            raise ApplicationError(problem.message, {"field": problem.field}, type=problem.type)

    # Signals take any number of arguments of any shape: operators type them by hand
    # (`temporal workflow signal`, with no `--input` or several), and a handler whose signature
    # does not match would fail the workflow task on every attempt. What is malformed is logged
    # and dropped; the run goes on.

    @workflow.signal
    def provide_input(self, *args: Any) -> None:
        payload = _signal_payload("provide_input", args, UserInput, '{"text": ...}')
        if payload is None:
            return
        if payload.input_id is not None and payload.input_id in self._state.inputs_taken:
            return  # a retry of an input this run took already
        problem = self._input_problem(payload)
        if problem is not None:
            workflow.logger.warning("ignored provide_input: %s", problem.message)
            return
        self._take_input(payload)

    @workflow.signal
    def pause(self, *_ignored: Any) -> None:
        if self._state.status in TERMINAL_STATUSES or self._state.paused:
            return
        self._state.paused = True
        self._log_event("control", "pause requested; the run holds before its next activity")

    @workflow.signal
    def resume(self, *_ignored: Any) -> None:
        if not self._state.paused:
            return
        self._state.paused = False
        self._log_event("control", "resume requested")

    # ---- approvals of tool calls (a tool whose policy is `approval: always`) -----------------

    @workflow.update
    def submit_approval(self, payload: ApprovalDecision) -> ApprovalDecided:
        request = self._apply_decision(payload)
        return ApprovalDecided(
            approval_id=request.id, decision=request.status, status=self._state.status
        )

    @submit_approval.validator
    def _validate_approval(self, payload: ApprovalDecision) -> None:
        problem = self._approval_problem(payload)
        if problem is not None:
            raise ApplicationError(problem[1], type=problem[0])

    @workflow.signal
    def decide_approval(self, *args: Any) -> None:
        expected = '{"approval_id": ..., "approve": true|false, "reason": ...}'
        payload = _signal_payload("decide_approval", args, ApprovalDecision, expected)
        if payload is None:
            return
        problem = self._approval_problem(payload)
        if problem is not None:
            workflow.logger.warning("ignored decide_approval: %s", problem[1])
            return
        self._apply_decision(payload)

    def _approval_problem(self, payload: ApprovalDecision) -> tuple[str, str] | None:
        request = self._approval(payload.approval_id)
        if request is None:
            return "ApprovalNotFound", f"the run has no approval {payload.approval_id[:100]!r}"
        if request.status is not ApprovalStatus.PENDING:
            return "InvalidState", f"approval {request.id} is already {request.status.value}"
        if payload.reason:
            problem = text_problem(payload.reason, MAX_REASON_CHARS)
            if problem is not None:
                return "InvalidInput", f"reason: {problem}"
        return None

    def _approval(self, approval_id: str) -> ApprovalRequest | None:
        approvals: list[ApprovalRequest] = self._state.approvals
        return next((a for a in approvals if a.id == approval_id), None)

    def _request_approval(
        self, tool: str, arguments: dict[str, Any], node_id: str | None = None
    ) -> ApprovalRequest:
        """Hold a tool call for a person: record it, move the run to WAITING_FOR_APPROVAL and
        announce it on the stream. The caller waits until `_approval_decided(id)`."""
        approvals: list[ApprovalRequest] = self._state.approvals
        request = ApprovalRequest(
            id=f"approval-{len(approvals) + 1}",
            tool=tool,
            arguments=arguments,
            requested_at=workflow.now(),
            node_id=node_id,
        )
        approvals.append(request)
        self._approvals_changed(f"{tool} needs approval")
        self._log_approval(request)
        return request

    def _approvals_changed(self, message: str) -> None:
        """The run's status once an approval is requested or decided: waiting for approval
        while any is pending. (Graph runs derive it from their nodes instead.)"""
        pending = any(a.status is ApprovalStatus.PENDING for a in self._state.approvals)
        waiting = self._state.status is RunStatus.WAITING_FOR_APPROVAL
        if pending and not waiting:
            self._state.waiting_since = workflow.now()
            self._update_status(run=RunStatus.WAITING_FOR_APPROVAL, message=message)
        elif not pending and waiting:
            self._state.waiting_since = None
            self._update_status(run=RunStatus.RUNNING, message=message)

    def _approval_decided(self, approval_id: str) -> bool:
        request = self._approval(approval_id)
        return request is not None and request.status is not ApprovalStatus.PENDING

    def _apply_decision(self, payload: ApprovalDecision) -> ApprovalRequest:
        request = self._approval(payload.approval_id)
        assert request is not None  # checked by the validator / the signal handler
        request.status = ApprovalStatus.APPROVED if payload.approve else ApprovalStatus.DENIED
        request.reason = payload.reason.strip() or None
        request.decided_at = workflow.now()
        self._log_approval(request)
        self._approvals_changed("approvals decided")
        return request

    def _log_approval(self, request: ApprovalRequest) -> None:
        self._log_event(
            "approval",
            f"{request.id} {request.tool}: {request.status.value}",
            approval_id=request.id,
            tool=request.tool,
            arguments=request.arguments,
            status=request.status.value,
            reason=request.reason,
            node_id=request.node_id,
        )

    @workflow.signal
    def step(self, *_ignored: Any) -> None:
        """Let a paused run start exactly one more node (or activity), then hold again."""
        if not self._state.paused:
            return
        self._state.paused = False
        self._step_once = True
        self._log_event("control", "step requested")

    def _input_problem(self, payload: UserInput) -> InputProblem | None:
        if payload.node_id is not None:
            message = "this run has no nodes to answer: leave node_id out"
            return InputProblem("InvalidInput", message, "node_id")
        status = self._state.status
        if status is not RunStatus.WAITING_FOR_INPUT:
            return InputProblem("InvalidState", f"the run is {status.value}, not waiting for input")
        return self._text_problem(payload.text)

    def _text_problem(self, text: str) -> InputProblem | None:
        problem = text_problem(text, self._max_input_chars)
        return InputProblem("InvalidInput", problem) if problem is not None else None

    def _take_input(self, payload: UserInput) -> None:
        self._accept_input(payload)
        if payload.input_id is not None:
            taken = self._state.inputs_taken
            taken[payload.input_id] = self._state.status
            for old in list(taken)[:-MAX_INPUT_IDS]:
                del taken[old]

    def _accept_input(self, payload: UserInput) -> None:
        self._on_input(payload.text.strip())
        self._state.question = None
        # The run counts as resumed the moment input lands, so a second input is rejected.
        self._update_status(run=RunStatus.RUNNING, message="input received")

    def _on_input(self, text: str) -> None:
        """Where the subclass keeps an accepted input."""

    # ---- the one place where statuses change ----------------------------------------------

    def _update_status(
        self,
        *,
        run: RunStatus | None = None,
        stage: Stage | None = None,
        node: NodeState | None = None,
        node_status: NodeStatus | None = None,
        error: str | None = None,
        message: str = "",
    ) -> None:
        """Change the run status, the stage or a node's status: check the transition, stamp
        the time, log the event, keep the search attributes current."""
        now = workflow.now()
        state: RunStateBase = self._state
        attributes: list[SearchAttributeUpdate[Any]] = []
        if run is not None:
            check_run_transition(state.status, run)
            state.status = run
            run_metrics.status_changed(
                state.kind, run.value, state.created_at, run in TERMINAL_STATUSES
            )
            attributes.append(RUN_STATUS.value_set(run.value))
            self._log_event(
                "status",
                f"{run.value}{': ' + message if message else ''}",
                status=run.value,
                message=message,
            )
        if stage is not None:
            check_stage_transition(self._state.stage, stage)
            run_metrics.stage_left(state.kind, self._state.stage.value, self._stage_since())
            self._state.stage = stage
            if self._attributes_at_start and stage is Stage.DONE:
                # Always followed by the end status: one upsert (one visibility write) for both.
                self._held_attributes = [RUN_STAGE.value_set(stage.value)]
            else:
                attributes.append(RUN_STAGE.value_set(stage.value))
            self._log_event("stage", stage.value, stage=stage.value)
        if node is not None and node_status is not None:
            check_node_transition(node.status, node_status)
            node.status = node_status
            if node_status is NodeStatus.EXECUTING:
                node.started_at = now
            elif node_status in (NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.CANCELLED):
                node.ended_at = now
            if error is not None:
                node.error = error
            self._log_event(
                "node",
                f"{node.id} {node_status.value}{': ' + error if error else ''}",
                node_id=node.id,
                name=node.name,
                status=node_status.value,
                error=error,
            )
        state.updated_at = now
        if attributes:
            if self._held_attributes:
                attributes = self._held_attributes + attributes
                self._held_attributes = None
            workflow.upsert_search_attributes(attributes)

    def _stage_since(self) -> datetime:
        """When the current stage began: its event, or the run's start for the first one."""
        state: RunStateBase = self._state
        for event in reversed(state.events):
            if event.kind == "stage":
                return event.at
        return state.created_at

    def _log_event(self, kind: str, text: str, **data: Any) -> None:
        """Append to the state's event log and publish on the run's event stream."""
        now = workflow.now()
        self._state.events.append(RunEvent(at=now, kind=kind, message=text))
        del self._state.events[:-MAX_EVENTS]
        self._events.publish(StreamEvent(type=kind, at=now, data=data or {"message": text}))
        # No logging here: this runs for every node, and a log call interrupted by the deadlock
        # detector while it holds the logging lock has wedged a worker for good.

    async def _hold_if_paused(self) -> None:
        """Hold here while the run is paused. After a `step`, the next hold holds again."""
        if not self._state.paused:
            return
        self._held = True
        self._on_hold_change("held before the next activity")
        await workflow.wait_condition(lambda: not self._state.paused)
        self._held = False
        if self._step_once:
            self._step_once = False
            self._state.paused = True
        self._on_hold_change("resumed")

    def _on_hold_change(self, message: str) -> None:
        """The status while held (and after): PAUSED, then RUNNING."""
        status = RunStatus.PAUSED if self._held else RunStatus.RUNNING
        if status is not self._state.status:
            self._update_status(run=status, message=message)

    async def _fail_unrunnable(self, message: str) -> None:
        """End a run whose input cannot be run (undecodable, over its limits): failed, once."""
        await self._fail(message, error_type="InvalidRunInput")

    async def _fail(self, message: str, error_type: str = "RunFailed") -> NoReturn:
        """Fail the run with `message`. Its final state travels in the failure's details, so
        it can be read from the run's history without a worker replaying it."""
        self._state.errors.append(message)
        if RunStatus.FAILED in RUN_TRANSITIONS[self._state.status]:
            self._update_status(run=RunStatus.FAILED, message=message)
        else:  # an internal error after the run ended (a forged state): it fails all the same
            self._state.status = RunStatus.FAILED
            workflow.upsert_search_attributes([RUN_STATUS.value_set(RunStatus.FAILED.value)])
        await self._finish_stream(self._result_fields())
        raise ApplicationError(
            message,
            self._state.model_dump(mode="json"),
            type=error_type,
            non_retryable=True,
        )

    def _result_fields(self) -> dict[str, Any]:
        """What the terminal `result` event carries besides status and errors."""
        return {}

    async def _finish_stream(self, result: dict[str, Any]) -> None:
        """Publish the terminal `result` event and release subscribers' long polls."""
        state = self._state
        self._events.publish(
            StreamEvent(
                type="result",
                at=workflow.now(),
                data={"status": state.status.value, **result, "errors": state.errors},
            )
        )
        self._stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        state.final_stream = _stream_tail(self._stream.get_state(publisher_ttl=timedelta(0)))


def _stream_tail(stream: WorkflowStreamState) -> WorkflowStreamState:
    """The newest items of the stream, at most FINAL_STREAM_BYTES of them (they travel in the
    run's result, under Temporal's 2 MB payload limit)."""
    size = 0
    keep = 0
    for item in reversed(stream.log):
        size += len(item.data) + len(item.topic) + 32
        if size > FINAL_STREAM_BYTES:
            break
        keep += 1
    dropped = len(stream.log) - keep
    return WorkflowStreamState(
        log=stream.log[dropped:], base_offset=stream.base_offset + dropped, publishers={}
    )


PayloadT = TypeVar("PayloadT", bound=BaseModel)


def _signal_payload(
    name: str, args: tuple[Any, ...], model: type[PayloadT], expected: str
) -> PayloadT | None:
    """A signal's one argument as `model`, or None (logged) when it is missing, extra or
    malformed: a signal that does not fit is dropped, and the run goes on."""
    if len(args) != 1:
        workflow.logger.warning(
            "ignored %s with %d arguments (expected one: %s)", name, len(args), expected
        )
        return None
    try:
        return model.model_validate(args[0])
    except ValidationError as exc:
        workflow.logger.warning("ignored %s with a malformed payload: %s", name, str(exc)[:300])
        return None


def decode_input(raw: RawValue, model: type[InputT]) -> tuple[InputT | None, str | None]:
    """The run's input as `model`, or why it cannot be: a worker that cannot decode a run's
    input fails that run once, with the reason, instead of failing its workflow task forever."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, model)
    except Exception as exc:  # a bad shape, JSON nested past the decoder's limit, ...
        message = str(exc).replace("\n", " ")[:500]
        return None, f"the run's input cannot be read: {message}"
    if not isinstance(value, model):  # null, or a payload that is not JSON (binary/plain)
        return None, f"the run's input cannot be read: expected a {model.__name__} object"
    return value, None


def failure_message(exc: BaseException) -> str:
    """The message users should read: the innermost cause's text, without type prefixes."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message or str(cause)
    return str(cause or exc)
