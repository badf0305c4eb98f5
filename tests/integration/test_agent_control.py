"""Control of a run: update and signal input, malformed signals, pause/resume, cancellation,
permanent failure, the input timeout, continue-as-new and search attributes."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError

from activities.llm import OfflineProvider
from activities.models import IntentInput, IntentOutput, PlanInput, PlanOutput
from config import Settings
from tests.helpers import eventually
from tests.integration.runs import event_types, start_run, state_of, wait_for_status
from workflows.agent import AgentWorkflow
from workflows.state import NodeStatus, RunStatus, UserInput


async def _rejected(handle, text: str) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(AgentWorkflow.submit_input, UserInput(text=text))
    assert isinstance(failed.value.cause, ApplicationError)
    return failed.value.cause


async def test_rejected_updates_leave_no_trace_in_history(
    client: Client, settings: Settings, worker
):
    async with worker():
        # Paused from its first task on: a run that exists and is not waiting for input.
        paused = await start_run(client, settings, "What is 2 + 2?", start_signal="pause")
        await wait_for_status(paused, RunStatus.PAUSED)
        before = await event_types(paused)
        cause = await _rejected(paused, "an answer nobody asked for")
        assert cause.type == "InvalidState" and "paused" in cause.message
        assert await event_types(paused) == before

        waiting = await start_run(client, settings, "Plan my trip to Lisbon", max_input_chars=20)
        await wait_for_status(waiting, RunStatus.WAITING_FOR_INPUT)
        before = await event_types(waiting)
        assert (await _rejected(waiting, "   ")).type == "InvalidInput"
        assert (await _rejected(waiting, "x" * 21)).type == "InvalidInput"
        assert await event_types(waiting) == before
        assert not any("UPDATE" in e for e in before)
        assert (await state_of(waiting)).status is RunStatus.WAITING_FOR_INPUT

        await paused.signal(AgentWorkflow.resume)
        await waiting.execute_update(AgentWorkflow.submit_input, UserInput(text="In May"))
        assert (await paused.result()).status is RunStatus.COMPLETED
        assert (await waiting.result()).status is RunStatus.COMPLETED


async def test_signal_resumes_a_waiting_run(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        await handle.signal("provide_input", {"text": "A weekend of fado"})
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert "A weekend of fado" in (state.answer or "")


async def test_malformed_signals_are_ignored_and_the_run_keeps_waiting(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        for payload in ({"wrong": "shape"}, {"text": ""}, {"text": 5}, 42, "plain text", None):
            await handle.signal("provide_input", payload)
        await eventually(
            lambda: event_types(handle),
            lambda events: (
                events.count("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED") == 6
                and events[-1] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"
            ),
            what="all six signals processed",
        )
        state = await state_of(handle)
        assert state.status is RunStatus.WAITING_FOR_INPUT
        assert state.user_inputs == []
        await handle.signal("provide_input", {"text": "Two days"})
        final = await handle.result()
    assert final.status is RunStatus.COMPLETED
    assert final.user_inputs == ["Two days"]


async def test_pause_holds_before_the_next_activity_and_resume_continues(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "What is 6 * 7?", start_signal="pause")
        paused = await wait_for_status(handle, RunStatus.PAUSED)
        assert paused.nodes == []  # held before its first activity
        assert "ACTIVITY" not in " ".join(await event_types(handle))
        await handle.signal(AgentWorkflow.resume)
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert "42" in (state.answer or "")
    statuses = [e.message.split(":")[0] for e in state.events if e.kind == "status"]
    assert statuses[:3] == ["running", "paused", "running"]


async def test_cancel_while_waiting_for_input(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert isinstance(failed.value.cause, CancelledError)
        state = await state_of(handle)
    assert state.status is RunStatus.CANCELLED


class _SlowIntent(OfflineProvider):
    """Classifies slowly, so the run can be cancelled while the activity runs."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def classify(self, req: IntentInput) -> IntentOutput:
        self.started.set()
        try:
            await asyncio.sleep(300)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("not cancelled")


async def test_cancel_reaches_a_running_activity(client: Client, settings: Settings, worker):
    provider = _SlowIntent()
    async with worker(provider=provider):
        handle = await start_run(client, settings, "Tell me about durable runs")
        await asyncio.wait_for(provider.started.wait(), 20)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        await asyncio.wait_for(provider.cancelled.wait(), 20)
        state = await state_of(handle)
        events = await event_types(handle)
    assert state.status is RunStatus.CANCELLED
    assert state.nodes[0].status is NodeStatus.CANCELLED
    # The activity acknowledged the cancellation before the run closed.
    assert "EVENT_TYPE_ACTIVITY_TASK_CANCELED" in events


class _BrokenPlanner(OfflineProvider):
    async def plan(self, req: PlanInput) -> PlanOutput:
        raise ApplicationError(
            "the model rejected the API key", type="ConfigurationError", non_retryable=True
        )


async def test_an_activity_that_fails_for_good_fails_the_run(
    client: Client, settings: Settings, worker
):
    async with worker(provider=_BrokenPlanner()):
        handle = await start_run(client, settings, "What is 3 * 3?")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        state = await state_of(handle)
    assert "the model rejected the API key" in str(failed.value.cause)
    assert state.status is RunStatus.FAILED
    assert any("the model rejected the API key" in e for e in state.errors)
    plan = next(n for n in state.nodes if n.name == "plan")
    assert plan.status is NodeStatus.FAILED and "API key" in (plan.error or "")


class _FlakyPlanner(OfflineProvider):
    def __init__(self) -> None:
        self.calls = 0

    async def plan(self, req: PlanInput) -> PlanOutput:
        self.calls += 1
        if activity.info().attempt == 1:
            raise RuntimeError("transient: connection reset")
        return await super().plan(req)


async def test_a_transient_activity_failure_is_retried(client: Client, settings: Settings, worker):
    provider = _FlakyPlanner()
    async with worker(provider=provider):
        state = await (await start_run(client, settings, "What is 3 * 3?")).result()
    assert state.status is RunStatus.COMPLETED
    assert provider.calls == 2
    assert "9" in (state.answer or "")


async def test_waiting_times_out_with_a_clear_error(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon", input_timeout_s=1)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        state = await state_of(handle)
    assert "no input arrived within 1 second" in str(failed.value.cause)
    assert state.status is RunStatus.FAILED
    assert state.errors == ["no input arrived within 1 second; the run stopped waiting"]


async def test_continue_as_new_carries_the_state(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_run(client, settings, "What is 17 * 23?", history_threshold=1)
        state = await handle.result()
        first_run = await client.get_workflow_handle(
            handle.id, run_id=handle.result_run_id
        ).describe()
    assert state.continued_as_new >= 3  # one hand-over per stage boundary at this threshold
    assert first_run.status is not None and first_run.status.name == "CONTINUED_AS_NEW"
    assert state.status is RunStatus.COMPLETED
    assert "391" in (state.answer or "")
    names = [n.name for n in state.nodes]
    assert names[0] == "intent" and names[-1] == "step-2"
    assert state.created_at < state.updated_at


async def test_search_attributes_follow_the_run(client: Client, settings: Settings, worker):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        query = (
            f'WorkflowId = "{handle.id}" AND RunStatus = "waiting_for_input" '
            'AND RunStage = "context" AND RunKind = "agent"'
        )
        await eventually(
            lambda: client.count_workflows(query), lambda c: c.count == 1, what="visibility"
        )
        await handle.signal("provide_input", {"text": "In June"})
        await handle.result()
        done = f'WorkflowId = "{handle.id}" AND RunStatus = "completed" AND RunStage = "done"'
        await eventually(
            lambda: client.count_workflows(done), lambda c: c.count == 1, what="visibility"
        )


async def test_a_waiting_run_continues_as_new_when_its_history_grows(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon", history_threshold=1)
        waiting = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        handed_over = waiting.continued_as_new
        # Stray signals grow the history while the run waits (as subscribers' polls do).
        for _ in range(12):
            await handle.signal("provide_input", {"bad": "payload"})
        still_waiting = await eventually(
            lambda: state_of(handle),
            lambda s: s.continued_as_new > handed_over,
            what="a hand-over while waiting",
        )
        assert still_waiting.status is RunStatus.WAITING_FOR_INPUT
        # Handed over because the history grew, not in a loop: a fresh run waits quietly.
        assert still_waiting.continued_as_new <= handed_over + 2
        assert still_waiting.question == waiting.question
        await handle.signal("provide_input", {"text": "Five days"})
        final = await handle.result()
    assert final.status is RunStatus.COMPLETED
    assert "Five days" in (final.answer or "")
