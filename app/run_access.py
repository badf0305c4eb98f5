"""Reading a run for a tenant, and telling Temporal's answers apart. Shared by routes.

Every read or control of a run starts with :func:`describe_owned`: one `describe()` and a
constant-time comparison of the run's `Tenant` search attribute. Another tenant's run and an
unknown id cost the same one call and answer the same 404, and a foreign run never reaches a
query (which would need a worker, and take measurably longer).

A run whose query cannot be answered still reads as something, built from `describe()` and the
end of its history: `stuck` while its workflow task keeps failing (the failure message in
`errors`), `failed` when it was terminated or timed out (Temporal's reason in `errors`).
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingWorkflowTaskState, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from app.errors import ApiError, InvalidState, RunNotFound, TemporalUnavailable, translate_rpc_error
from config import Settings
from shared import RUN_KIND, TENANT
from workflows.state import (
    TERMINAL_STATUSES,
    AgentState,
    GraphState,
    NodeStatus,
    RunStateBase,
    RunStatus,
)

STUCK: Literal["stuck"] = "stuck"
ViewStatus = RunStatus | Literal["stuck"]

# The workflow types that are runs of this API, and the kind each one is.
RUN_WORKFLOW_TYPES = {"AgentWorkflow": "agent", "GraphWorkflow": "graph"}

# Temporal statuses of a run that ended without the workflow recording it.
_ENDED_BY_TEMPORAL = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
}
# What Temporal's own status says when the workflow's state cannot be read.
_FROM_TEMPORAL = {
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.FAILED,
}
_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
_TAIL_EVENTS = 50
# A task that failed this many times in a row is failing for good (a bug fails every attempt;
# a signal racing a completion fails one).
STUCK_AFTER_ATTEMPTS = 3
_TRANSIENT_CAUSES = {
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNSPECIFIED,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_UPDATE,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
}


@dataclass
class RunRead:
    """What the gateway knows of a run: its state when the workflow answered, else what
    `describe()` and its history say (`state` is then None)."""

    run_id: str
    kind: str
    status: ViewStatus
    state: RunStateBase | None
    errors: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.state is not None and self.state.paused


def parse_state(raw: Any) -> RunStateBase:
    """A `get_state` answer as the model of its kind."""
    if isinstance(raw, dict) and raw.get("kind") == "graph":
        return GraphState.model_validate(raw)
    return AgentState.model_validate(raw)


async def describe_owned(
    client: Client, run_id: str, settings: Settings, tenant: str | None
) -> WorkflowExecutionDescription:
    """The run's description; 404 when it does not exist, is not a run of this API, or belongs
    to another tenant — after the same single call in every case."""
    try:
        description = await client.get_workflow_handle(run_id).describe(
            rpc_timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except (RPCError, RuntimeError) as exc:
        raise translate_rpc_error(exc, run_id) from None
    ours = description.workflow_type in RUN_WORKFLOW_TYPES
    mine = True
    if tenant is not None:
        owner = description.typed_search_attributes.get(TENANT) or ""
        mine = hmac.compare_digest(owner.encode(), tenant.encode())
    if not (ours and mine):
        raise RunNotFound(run_id)  # exactly like an unknown run: ids are not an oracle
    return description


async def load_run(client: Client, run_id: str, settings: Settings, tenant: str | None) -> RunRead:
    """The run as the HTTP API shows it; 404 when it does not exist or belongs to another
    tenant; never an error for a run that exists but cannot answer its query."""
    description = await describe_owned(client, run_id, settings, tenant)
    failure = await task_failure(client, description, settings)
    if failure is not None:
        return _from_description(description, STUCK, [failure])
    if await never_ran(client, description, settings):
        # No worker has taken its first task yet: it is pending, and a query would only wait
        # (for the full timeout when no worker polls its task queue).
        return _from_description(description, RunStatus.PENDING, [])
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(run_id)
    ended = _ENDED_BY_TEMPORAL.get(description.status) if description.status else None
    try:
        raw = await _final_state(client, description, settings)
        if raw is None:
            raw = await patient_query(handle, "get_state", None, dict, settings)
        state = parse_state(raw)
    except ValidationError:
        raise RunNotFound(run_id) from None  # a workflow of ours, but not a run
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, RuntimeError) as exc:
        return await _unanswered(client, description, settings, exc)
    if tenant is not None and state.tenant != tenant:
        raise RunNotFound(run_id)  # the search attribute said otherwise: trust neither
    read = RunRead(
        run_id=run_id,
        kind=state.kind,
        status=state.status,
        state=state,
        errors=list(state.errors),
        created_at=state.created_at,
        updated_at=state.updated_at,
    )
    if ended is not None:  # the workflow never recorded its end: say how it ended
        read.status = RunStatus.FAILED
        read.errors.append(await _end_reason(client, description, settings, ended))
    return read


def _no_poller(exc: BaseException) -> bool:
    return (
        isinstance(exc, RPCError)
        and exc.status is RPCStatusCode.FAILED_PRECONDITION
        and "no poller" in exc.message
    )


async def patient_query(
    handle: WorkflowHandle[Any, Any],
    query: Any,
    arg: Any,
    result_type: type,
    settings: Settings,
    timeout_s: float | None = None,
) -> Any:
    """A query that waits out a busy worker, up to the query timeout.

    Temporal refuses a query at once ("no poller seen for task queue recently") when no worker
    has polled the run's task queue for a while: a worker that is restarting, or one so busy
    that it polls late. Both usually pass within seconds; a read should not fail for them, so
    the query is tried again with a back-off until `query_timeout_s` has passed (then the
    caller answers 503 with Retry-After, as for any unavailable worker). `timeout_s`: a shorter
    budget, what is left of the caller's."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout_s if timeout_s is not None else settings.query_timeout_s)
    delay = 0.25
    while True:
        left = deadline - loop.time()
        try:
            args = () if arg is None else (arg,)
            return await handle.query(
                query,
                *args,
                result_type=result_type,
                rpc_timeout=timedelta(seconds=max(left, 0.5)),
            )
        except RPCError as exc:
            if not _no_poller(exc) or left <= delay:
                raise
        await asyncio.sleep(delay)  # back-off between attempts, not synchronisation
        delay = min(delay * 2, 2.0)


async def _final_state(
    client: Client, description: WorkflowExecutionDescription, settings: Settings
) -> Any:
    """A closed run's state, from its last event — both workflows return their whole state, and
    fail with it in the failure's details: one history read, no worker needed, no replay. None
    for any other run (and runs that failed before their state travelled with the failure)."""
    if description.status not in (
        WorkflowExecutionStatus.COMPLETED,
        WorkflowExecutionStatus.FAILED,
    ):
        return None
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
        maximum_page_size=1,
    )
    try:
        response = await client.workflow_service.get_workflow_execution_history_reverse(
            request, retry=True, timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except (RPCError, RuntimeError):
        return None  # the query can still answer
    for event in response.history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            payloads = event.workflow_execution_completed_event_attributes.result.payloads
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = event.workflow_execution_failed_event_attributes.failure
            payloads = failure.application_failure_info.details.payloads
        else:
            return None
        if not payloads:
            return None
        # Through the whole data converter: a payload codec (encryption) applies too.
        value = (await client.data_converter.decode([payloads[0]], [dict]))[0]
        return value if isinstance(value, dict) and "run_id" in value else None
    return None


async def task_failure(
    client: Client, description: WorkflowExecutionDescription, settings: Settings
) -> str | None:
    """The failure message when the run's workflow task keeps failing (it is then `stuck`:
    Temporal retries the task forever and the workflow answers no query), else None."""
    if description.status is not WorkflowExecutionStatus.RUNNING:
        return None
    pending = description.raw_description.pending_workflow_task
    if pending.attempt < STUCK_AFTER_ATTEMPTS:
        return None
    # A retried task after a worker died ends in TIMED_OUT; one the workflow code fails, FAILED.
    for event in await _tail(client, description, settings):
        if event.event_type in _TASK_EVENTS:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                if event.workflow_task_failed_event_attributes.cause in _TRANSIENT_CAUSES:
                    return None  # Temporal's own bookkeeping; the next attempt goes on
                failure = event.workflow_task_failed_event_attributes.failure
                message = failure.message or "the workflow task failed"
                if failure.HasField("cause") and failure.cause.message:
                    message = f"{message}: {failure.cause.message}"
                attempts = pending.attempt
                return f"the run's workflow task keeps failing ({attempts} attempts): {message}"
            return None
    return None


async def never_ran(
    client: Client, description: WorkflowExecutionDescription, settings: Settings
) -> bool:
    """True while no workflow task of the run has completed: its first task waits for a worker.
    (One short history read, only when a task is scheduled and the history is that short.)"""
    raw = description.raw_description
    if description.status is not WorkflowExecutionStatus.RUNNING:
        return False
    if not raw.HasField("pending_workflow_task"):
        return False
    if (
        raw.pending_workflow_task.state
        != PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
    ):
        return False
    if raw.workflow_execution_info.history_length > _TAIL_EVENTS:
        return False
    events = await _tail(client, description, settings)
    if len(events) < raw.workflow_execution_info.history_length:
        return False  # not the whole history: claim nothing
    return not any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events)


async def _unanswered(
    client: Client,
    description: WorkflowExecutionDescription,
    settings: Settings,
    exc: BaseException,
) -> RunRead:
    """The run did not answer its query. Closed runs read from Temporal's status; a running run
    whose task fails reads `stuck`; anything else is Temporal or the worker being unavailable."""
    status = description.status
    if status is not None and status in _FROM_TEMPORAL:
        ended = _ENDED_BY_TEMPORAL.get(status)
        if ended is not None:
            reason = await _end_reason(client, description, settings, ended)
        else:
            reason = f"the run is closed and its state could not be read: {_message(exc)}"
        return _from_description(description, _FROM_TEMPORAL[status], [reason])
    # Running: the task may have started failing after the describe.
    fresh = await describe_owned(client, description.id, settings, None)
    failure = await task_failure(client, fresh, settings)
    if failure is not None:
        return _from_description(fresh, STUCK, [failure])
    if isinstance(exc, WorkflowQueryFailedError):
        raise TemporalUnavailable(
            "the run's state could not be read", {"reason": _message(exc)}
        ) from None
    if isinstance(exc, RPCError) and exc.status is RPCStatusCode.FAILED_PRECONDITION:
        # The run is not ready to answer yet (e.g. its first workflow task has not run).
        raise TemporalUnavailable(
            "the run cannot answer yet; retry shortly", {"reason": exc.message}
        ) from None
    raise translate_rpc_error(exc, description.id) from None


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, RPCError) else str(exc)


def _from_description(
    description: WorkflowExecutionDescription, status: ViewStatus, errors: list[str]
) -> RunRead:
    kind = description.typed_search_attributes.get(RUN_KIND)
    return RunRead(
        run_id=description.id,
        kind=kind or RUN_WORKFLOW_TYPES.get(description.workflow_type, "agent"),
        status=status,
        state=None,
        errors=errors,
        created_at=description.start_time,
        updated_at=description.close_time or description.start_time,
    )


async def _end_reason(
    client: Client, description: WorkflowExecutionDescription, settings: Settings, ended: str
) -> str:
    for event in await _tail(client, description, settings):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            reason = event.workflow_execution_terminated_event_attributes.reason
            return f"the run was terminated: {reason or 'no reason given'}"
    return f"the run {ended} (Temporal ended it before the workflow could record it)"


async def _tail(
    client: Client, description: WorkflowExecutionDescription, settings: Settings
) -> list[HistoryEvent]:
    """The last events of the run's history, newest first (one reverse-history call)."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
        maximum_page_size=_TAIL_EVENTS,
    )
    try:
        response = await client.workflow_service.get_workflow_execution_history_reverse(
            request, retry=True, timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except (RPCError, RuntimeError) as exc:
        raise translate_rpc_error(exc, description.id) from None
    return list(response.history.events)


def require_active(read: RunRead, verb: str) -> None:
    if read.status == STUCK:
        raise InvalidState(
            f"the run is stuck (its workflow task keeps failing) and cannot be {verb}",
            {"errors": read.errors},
        )
    if read.status in TERMINAL_STATUSES:
        raise InvalidState(f"the run is {read.status} and cannot be {verb}")


async def closed_or(
    exc: BaseException,
    client: Client,
    run_id: str,
    settings: Settings,
    tenant: str | None,
    verb: str,
) -> ApiError:
    """Temporal answers NOT_FOUND both for an unknown run and for a closed one; tell them apart."""
    if not isinstance(exc, RPCError) or exc.status is not RPCStatusCode.NOT_FOUND:
        return translate_rpc_error(exc, run_id)
    try:
        read = await load_run(client, run_id, settings, tenant)
    except ApiError as error:
        return error
    if verb == "input":
        return InvalidState(f"the run is {read.status}, not waiting for input")
    return InvalidState(f"the run is {read.status} and cannot be {verb}")


async def child_questions(
    client: Client, state: GraphState, settings: Settings
) -> list[tuple[str, str, AgentState]]:
    """(node id, child run id, child state) of each agent node whose child run waits for
    input: its question is answered through the graph run's input, with the node's id."""
    found = []
    for node in state.nodes:
        if node.type != "agent" or node.status is not NodeStatus.EXECUTING:
            continue
        if node.child_run_id is None:
            continue
        try:
            raw = await client.get_workflow_handle(node.child_run_id).query(
                "get_state",
                result_type=dict,
                rpc_timeout=timedelta(seconds=settings.query_timeout_s),
            )
            child = AgentState.model_validate(raw)
        except (RPCError, WorkflowQueryFailedError, RuntimeError, ValidationError):
            continue  # a child that cannot answer now is shown by its own id
        if child.status is RunStatus.WAITING_FOR_INPUT and child.question:
            found.append((node.id, node.child_run_id, child))
    return found
