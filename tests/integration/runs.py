"""Starting agent runs directly with the Temporal client, as the gateway does."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from config import Settings
from tests.helpers import eventually
from workflows.agent import AgentWorkflow
from workflows.state import AgentInput, AgentState, RunStatus


async def start_run(
    client: Client,
    settings: Settings,
    query: str,
    *,
    start_signal: str | None = None,
    **limits: Any,
) -> WorkflowHandle[AgentWorkflow, AgentState]:
    return await client.start_workflow(
        AgentWorkflow.run,
        AgentInput(query=query, **limits),
        id=f"test-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
        start_signal=start_signal,
    )


async def state_of(handle: WorkflowHandle[Any, Any]) -> AgentState:
    result: AgentState = await handle.query(AgentWorkflow.get_state)
    return result


async def wait_for_status(
    handle: WorkflowHandle[Any, Any], status: RunStatus, deadline_s: float = 20
) -> AgentState:
    return await eventually(
        lambda: state_of(handle),
        lambda s: s.status is status,
        deadline_s=deadline_s,
        what=f"status {status.value}",
    )


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [EventType.Name(e.event_type) for e in history.events]
