"""Waiting for a person for days, with time skipping (the dev server's time-skipping mode, which
works offline; `start_time_skipping()` alone would download a test server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from config import Settings
from devstack.processes import temporal_binary
from plugin import DATA_CONVERTER
from temporal_client import ensure_search_attributes
from tests.integration.runs import start_run, wait_for_status
from worker import build_worker
from workflows.agent import AgentWorkflow
from workflows.state import RunStatus, UserInput


@pytest.fixture
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
        ],
        # The converter only: the worker below brings the plugin (a client's plugins would
        # reach its workers too, and register our workflows twice).
        data_converter=DATA_CONVERTER,
    )
    async with env:
        await ensure_search_attributes(env.client, "default")
        yield env


async def test_a_run_waits_almost_seven_days_then_gets_its_answer(skipping: WorkflowEnvironment):
    settings = Settings(task_queue=f"skip-{uuid.uuid4().hex}")
    async with build_worker(skipping.client, settings):
        handle = await start_run(skipping.client, settings, "Plan my trip to Lisbon")
        asked = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        await skipping.fast_forward(handle, timedelta(days=6, hours=23))
        still = await handle.query(AgentWorkflow.get_state)
        assert still.status is RunStatus.WAITING_FOR_INPUT
        await handle.execute_update(AgentWorkflow.submit_input, UserInput(text="A week in June"))
        done = await handle.result()
    assert done.status is RunStatus.COMPLETED and "A week in June" in (done.answer or "")
    assert done.updated_at - (asked.waiting_since or asked.updated_at) >= timedelta(
        days=6, hours=23
    )


async def test_a_wait_that_times_out_fails_the_run_clearly(skipping: WorkflowEnvironment):
    settings = Settings(task_queue=f"skip-{uuid.uuid4().hex}")
    async with build_worker(skipping.client, settings):
        handle = await start_run(skipping.client, settings, "Plan my trip to Lisbon")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()  # time skips through the 7-day wait
        state = await handle.query(AgentWorkflow.get_state)
    assert "no input arrived within 7 days" in str(failed.value.cause)
    assert state.status is RunStatus.FAILED
    assert state.updated_at - state.created_at >= timedelta(days=7)
