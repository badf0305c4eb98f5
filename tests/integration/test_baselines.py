"""A run started by newer code (a baseline this worker does not know) is not failed by an older
worker: its workflow task fails, so Temporal retries it until an upgraded worker takes it."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from config import Settings
from tests.helpers import eventually
from workflows.agent import AgentWorkflow
from workflows.patches import CURRENT_BASELINE
from workflows.state import AgentInput


async def test_a_run_from_a_newer_baseline_waits_for_a_worker_that_knows_it(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await client.start_workflow(
            AgentWorkflow.run,
            AgentInput(query="hello", baseline=CURRENT_BASELINE + 1),
            id=f"newer-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
        )

        async def failed_tasks() -> list[str]:
            events = (await handle.fetch_history()).events
            return [
                e.workflow_task_failed_event_attributes.failure.message
                for e in events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]

        messages = await eventually(failed_tasks, lambda m: len(m) >= 1, what="a failed task")
        description = await handle.describe()
    assert "upgrade the workers before the gateways" in messages[0]
    assert description.status is WorkflowExecutionStatus.RUNNING  # not failed: retried
    await handle.terminate("test over")
