"""Reading a run's state for a tenant, and telling Temporal's answers apart. Shared by routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from app.errors import ApiError, InvalidState, RunNotFound, TemporalUnavailable, translate_rpc_error
from config import Settings
from workflows.state import TERMINAL_STATUSES, AgentState, GraphState, RunStateBase


def parse_state(raw: Any) -> RunStateBase:
    """A `get_state` answer as the model of its kind."""
    if isinstance(raw, dict) and raw.get("kind") == "graph":
        return GraphState.model_validate(raw)
    return AgentState.model_validate(raw)


async def load_run(
    client: Client, run_id: str, settings: Settings, tenant: str | None
) -> RunStateBase:
    """The run's state; 404 when it does not exist or belongs to another tenant."""
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(run_id)
    try:
        raw = await handle.query(
            "get_state", result_type=dict, rpc_timeout=timedelta(seconds=settings.query_timeout_s)
        )
        state = parse_state(raw)
    except RPCError as exc:
        raise translate_rpc_error(exc, run_id) from None
    except WorkflowQueryFailedError as exc:
        if "unknown queryType" in str(exc) or "not found" in str(exc).lower():
            raise RunNotFound(run_id) from None  # a workflow, but not one of our runs
        raise TemporalUnavailable(
            "the run's state could not be read", {"reason": str(exc)}
        ) from None
    except ValidationError:
        raise RunNotFound(run_id) from None  # a workflow of ours, but not a run
    except RuntimeError as exc:  # the lazy client could not connect
        raise TemporalUnavailable("Temporal is unreachable", {"reason": str(exc)}) from None
    if tenant is not None and state.tenant != tenant:
        raise RunNotFound(run_id)  # exactly like an unknown run: ids are not an oracle
    return state


def require_active(state: RunStateBase, verb: str) -> None:
    if state.status in TERMINAL_STATUSES:
        raise InvalidState(f"the run is {state.status.value} and cannot be {verb}")


async def closed_or(
    exc: RPCError, client: Client, run_id: str, settings: Settings, tenant: str | None, verb: str
) -> ApiError:
    """Temporal answers NOT_FOUND both for an unknown run and for a closed one; tell them apart."""
    if exc.status is not RPCStatusCode.NOT_FOUND:
        return translate_rpc_error(exc, run_id)
    try:
        state = await load_run(client, run_id, settings, tenant)
    except RunNotFound as not_found:
        return not_found
    if verb == "input":
        return InvalidState(f"the run is {state.status.value}, not waiting for input")
    return InvalidState(f"the run is {state.status.value} and cannot be {verb}")
