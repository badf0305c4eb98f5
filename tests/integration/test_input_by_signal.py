"""Input as the gateway sends it: checked with the read-only `check_input` query, delivered as
the `provide_input` signal with an input id, applied once however often it is sent
(docs/durability.md: why not the `submit_input` update)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from config import Settings
from tests.helpers import eventually
from tests.integration.runs import start_run, state_of, wait_for_status
from workflows.agent import AgentWorkflow
from workflows.state import InputCheck, RunStatus, UserInput


async def _check(handle, payload: UserInput) -> InputCheck:  # type: ignore[no-untyped-def]
    result: InputCheck = await handle.query(AgentWorkflow.check_input, payload)
    return result


async def test_a_signalled_input_is_checked_taken_once_and_remembered(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        answer = UserInput(text="Four days in May", input_id="input-one")
        assert await _check(handle, answer) == InputCheck(status=RunStatus.WAITING_FOR_INPUT)
        blank = await _check(handle, UserInput(text="  ", input_id="input-blank"))
        assert blank.problem_type == "InvalidInput" and blank.problem_field == "text"
        for _ in range(3):  # a client retrying: the run takes it once
            await handle.signal(AgentWorkflow.provide_input, answer)
        taken = await eventually(lambda: _check(handle, answer), lambda c: c.taken)
        assert taken.status is RunStatus.RUNNING
        other = await _check(handle, UserInput(text="Six days", input_id="input-two"))
        assert other.problem_type == "InvalidState" and not other.taken
        final = await handle.result()
        # Later, the same id still reads as taken, with the status it had then.
        assert await _check(handle, answer) == InputCheck(taken=True, status=RunStatus.RUNNING)
        assert (await state_of(handle)).status is RunStatus.COMPLETED
    assert final.user_inputs == ["Four days in May"]
    assert final.inputs_taken == {"input-one": RunStatus.RUNNING}
    events = [e.event_type for e in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in events
