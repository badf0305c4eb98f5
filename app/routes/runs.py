"""/api/v1/runs: start runs, read their state, and control them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from app.deps import AppSettings, TemporalClient
from app.errors import (
    ApiError,
    InvalidInput,
    InvalidState,
    RunNotFound,
    TemporalUnavailable,
    translate_rpc_error,
)
from app.schemas import ControlAccepted, ErrorBody, InputBody, RunCreate, RunCreated, RunView
from config import Settings
from workflows.agent import AgentWorkflow
from workflows.state import TERMINAL_STATUSES, AgentInput, AgentState, RunStatus, UserInput

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

RunId = Annotated[str, Path(min_length=1, max_length=200, description="The run's id")]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody}
    for code in (status.HTTP_404_NOT_FOUND, status.HTTP_409_CONFLICT, 422, 503)
}


def agent_input(query: str, settings: Settings) -> AgentInput:
    return AgentInput(
        query=query,
        input_timeout_s=settings.input_timeout_s,
        max_input_chars=settings.max_input_chars,
        max_context_rounds=settings.max_context_rounds,
        reflection_threshold=settings.reflection_threshold,
        max_reflection_retries=settings.max_reflection_retries,
        history_threshold=settings.history_threshold,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RunCreated,
    responses=ERRORS,
    summary="Start an agent run",
)
async def create_run(body: RunCreate, client: TemporalClient, settings: AppSettings) -> RunCreated:
    if not body.query.strip():
        raise InvalidInput("query must not be blank", [{"path": "body.query"}])
    if len(body.query) > settings.max_query_chars:
        raise InvalidInput(
            f"query is longer than {settings.max_query_chars} characters", [{"path": "body.query"}]
        )
    run_id = f"run-{uuid.uuid4().hex}"
    try:
        await client.start_workflow(
            AgentWorkflow.run,
            agent_input(body.query, settings),
            id=run_id,
            task_queue=settings.task_queue,
        )
    except RPCError as exc:
        raise translate_rpc_error(exc) from None
    except RuntimeError as exc:  # the lazy client could not connect
        raise TemporalUnavailable("Temporal is unreachable", {"reason": str(exc)}) from None
    return RunCreated(run_id=run_id, status=RunStatus.PENDING)


@router.get("/{run_id}", response_model=RunView, responses=ERRORS, summary="Read a run's state")
async def get_run(run_id: RunId, client: TemporalClient, settings: AppSettings) -> RunView:
    return RunView.from_state(await _query_state(client, run_id, settings))


@router.post(
    "/{run_id}/input",
    response_model=ControlAccepted,
    responses=ERRORS,
    summary="Answer a run that waits for input",
)
async def submit_input(
    run_id: RunId, body: InputBody, client: TemporalClient, settings: AppSettings
) -> ControlAccepted:
    if not body.text.strip():
        raise InvalidInput("text must not be blank", [{"path": "body.text"}])
    if len(body.text) > settings.max_input_chars:
        raise InvalidInput(
            f"text is longer than {settings.max_input_chars} characters", [{"path": "body.text"}]
        )
    handle = client.get_workflow_handle_for(AgentWorkflow.run, run_id)
    try:
        accepted = await handle.execute_update(
            AgentWorkflow.submit_input,
            UserInput(text=body.text),
            rpc_timeout=timedelta(seconds=settings.query_timeout_s),
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "InvalidInput":
            raise InvalidInput(cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == "InvalidState":
            raise InvalidState(cause.message) from None
        raise ApiError("the run rejected the input", {"reason": str(cause)}) from None
    except RPCError as exc:
        raise await _closed_or(exc, client, run_id, settings, "input") from None
    return ControlAccepted(run_id=run_id, status=accepted.status)


@router.post(
    "/{run_id}/pause",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ControlAccepted,
    responses=ERRORS,
    summary="Hold a run before its next activity",
)
async def pause_run(
    run_id: RunId, client: TemporalClient, settings: AppSettings
) -> ControlAccepted:
    state = await _query_state(client, run_id, settings)
    _require_active(state, "paused")
    if state.paused:
        raise InvalidState(f"the run is already paused (status {state.status.value})")
    await _signal(client, run_id, settings, AgentWorkflow.pause)
    return ControlAccepted(run_id=run_id, status=state.status)


@router.post(
    "/{run_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ControlAccepted,
    responses=ERRORS,
    summary="Let a paused run go on",
)
async def resume_run(
    run_id: RunId, client: TemporalClient, settings: AppSettings
) -> ControlAccepted:
    state = await _query_state(client, run_id, settings)
    _require_active(state, "resumed")
    if not state.paused:
        raise InvalidState(f"the run is not paused (status {state.status.value})")
    await _signal(client, run_id, settings, AgentWorkflow.resume)
    return ControlAccepted(run_id=run_id, status=state.status)


@router.post(
    "/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ControlAccepted,
    responses=ERRORS,
    summary="Cancel a run (Temporal cancellation)",
)
async def cancel_run(
    run_id: RunId, client: TemporalClient, settings: AppSettings
) -> ControlAccepted:
    _require_active(await _query_state(client, run_id, settings), "cancelled")
    handle = client.get_workflow_handle(run_id)
    try:
        await handle.cancel(rpc_timeout=timedelta(seconds=settings.query_timeout_s))
    except RPCError as exc:
        raise await _closed_or(exc, client, run_id, settings, "cancelled") from None
    return ControlAccepted(run_id=run_id, status="cancelling")


# ---- helpers --------------------------------------------------------------------------------


async def _query_state(client: TemporalClient, run_id: str, settings: Settings) -> AgentState:
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(run_id)
    try:
        return await handle.query(
            AgentWorkflow.get_state, rpc_timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except RPCError as exc:
        raise translate_rpc_error(exc, run_id) from None
    except WorkflowQueryFailedError as exc:
        raise TemporalUnavailable(
            "the run's state could not be read", {"reason": str(exc)}
        ) from None
    except RuntimeError as exc:
        raise TemporalUnavailable("Temporal is unreachable", {"reason": str(exc)}) from None


async def _signal(client: TemporalClient, run_id: str, settings: Settings, signal: Any) -> None:
    try:
        await client.get_workflow_handle(run_id).signal(
            signal, rpc_timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except RPCError as exc:
        raise await _closed_or(exc, client, run_id, settings, "signalled") from None


def _require_active(state: AgentState, verb: str) -> None:
    if state.status in TERMINAL_STATUSES:
        raise InvalidState(f"the run is {state.status.value} and cannot be {verb}")


async def _closed_or(
    exc: RPCError, client: TemporalClient, run_id: str, settings: Settings, verb: str
) -> ApiError:
    """Temporal answers NOT_FOUND both for an unknown run and for a closed one; tell them apart."""
    if exc.status is not RPCStatusCode.NOT_FOUND:
        return translate_rpc_error(exc, run_id)
    try:
        state = await _query_state(client, run_id, settings)
    except RunNotFound as not_found:
        return not_found
    if verb == "input":
        return InvalidState(f"the run is {state.status.value}, not waiting for input")
    return InvalidState(f"the run is {state.status.value} and cannot be {verb}")
