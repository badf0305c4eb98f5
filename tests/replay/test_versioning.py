"""The worked versioning example (docs/versioning.md): the `skip-calculation-reflection` change
to AgentWorkflow, guarded by `workflow.patched`."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from config import Settings
from plugin import DurableAgentPlugin
from tests.integration.runs import wait_for_status
from tests.replay.versions import AgentWorkflowBeforeChange, AgentWorkflowUnguardedChange
from worker import build_worker
from workflows.agent import AgentWorkflow
from workflows.state import AgentInput, RunStatus, UserInput

HISTORIES = Path(__file__).resolve().parent.parent / "histories"


def _history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())


async def _replay(workflow: type, name: str) -> Exception | None:
    replayer = Replayer(workflows=[], plugins=[DurableAgentPlugin(workflows=[workflow])])
    result = await replayer.replay_workflow(_history(name), raise_on_replay_failure=False)
    return result.replay_failure


async def test_histories_from_before_and_after_the_change_replay_on_current_code():
    before = _history("agent_calculator")
    assert not any("MARKER" in str(e.event_type) for e in before.events)  # pre-change
    assert await _replay(AgentWorkflow, "agent_calculator") is None
    assert await _replay(AgentWorkflow, "agent_calculator_patched") is None


async def test_the_same_change_without_patched_breaks_replay():
    failure = await _replay(AgentWorkflowUnguardedChange, "agent_calculator")
    assert isinstance(failure, NondeterminismError)


async def test_the_old_code_still_replays_its_own_histories():
    # Sanity of the test double: the "before" class is really the code the history came from.
    assert await _replay(AgentWorkflowBeforeChange, "agent_calculator") is None


async def test_runs_started_before_a_deploy_finish_on_the_new_worker(
    client: Client, settings: Settings
):
    old_workflows = [AgentWorkflowBeforeChange]
    old = build_worker(client, settings, workflows=old_workflows)
    async with old:
        # One run held before its first activity, one waiting for a person.
        held = await client.start_workflow(
            AgentWorkflow.run,
            AgentInput(query="What is 12 * 12?"),
            id=f"deploy-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
            start_signal="pause",
        )
        waiting = await client.start_workflow(
            AgentWorkflow.run,
            AgentInput(query="Plan my trip to Lisbon"),
            id=f"deploy-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
        )
        await wait_for_status(held, RunStatus.PAUSED)
        await wait_for_status(waiting, RunStatus.WAITING_FOR_INPUT)
    # The old worker is gone; the new code takes over the same task queue.
    async with build_worker(client, settings):
        await held.signal(AgentWorkflow.resume)
        await waiting.execute_update(AgentWorkflow.submit_input, UserInput(text="Five times five"))
        done = await held.result()
        rest = await waiting.result()
    assert done.status is RunStatus.COMPLETED and "144" in (done.answer or "")
    assert rest.status is RunStatus.COMPLETED and "Five times five" in (rest.answer or "")
    # Reached reflection on the new code: the new path (no reflect activity) was taken.
    assert "reflect" not in [n.name for n in done.nodes]
