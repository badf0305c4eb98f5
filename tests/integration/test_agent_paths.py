"""Each path of the offline provider, end to end through the real workflow and activities."""

from __future__ import annotations

from temporalio.client import Client

from config import Settings
from tests.integration.runs import start_run, wait_for_status
from workflows.agent import AgentWorkflow
from workflows.state import NodeStatus, RunStatus, Stage, UserInput


async def test_small_talk_is_answered_at_the_intent_stage(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "hello")
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.stage is Stage.DONE
    assert state.intent == "simple_chat"
    assert "Hello" in (state.answer or "")
    assert [n.name for n in state.nodes] == ["intent"]
    assert state.nodes[0].status is NodeStatus.COMPLETED
    assert state.nodes[0].started_at is not None and state.nodes[0].ended_at is not None
    assert state.usage.tokens_in > 0 and state.usage.tokens_out > 0


async def test_arithmetic_uses_the_calculator_tool(client: Client, settings: Settings, worker):
    async with worker():
        state = await (await start_run(client, settings, "What is 17 * 23?")).result()
    assert state.status is RunStatus.COMPLETED
    assert "391" in (state.answer or "")
    assert [(t.name, t.ok) for t in state.tool_history] == [("calculator", True)]
    names = [n.name for n in state.nodes]
    # The run lists its tools once (recorded), before its first context round.
    assert names[:4] == ["intent", "list-tools", "context-round-1", "tool-calculator"]
    # An exact calculator result is not reflected on (the `skip-calculation-reflection` patch).
    assert names[-2:] == ["step-1", "step-2"] and "reflect" not in names
    assert state.reflection is not None and state.reflection.score == 1.0
    assert all(n.status is NodeStatus.COMPLETED for n in state.nodes)
    assert state.plan and len(state.step_results) == len(state.plan)


async def test_documentation_question_cites_the_document(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "How does a run survive a worker crash?")
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert "durability.md" in (state.answer or "")
    assert state.tool_history[0].name == "search_docs"
    assert state.reflection is not None and state.reflection.score >= 0.7


async def test_unknown_topic_asks_the_user_and_uses_the_answer(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "Plan my trip to Lisbon")
        waiting = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        assert waiting.stage is Stage.CONTEXT
        assert waiting.question and "Lisbon" in waiting.question
        accepted = await handle.execute_update(
            AgentWorkflow.submit_input, UserInput(text="Three days in May, museums and food")
        )
        assert accepted.accepted and accepted.status is RunStatus.RUNNING
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.question is None
    assert "Three days in May" in (state.answer or "")
    assert state.user_inputs == ["Three days in May, museums and food"]


async def test_low_reflection_score_re_executes_with_the_critique(
    client: Client, settings: Settings, worker
):
    async with worker():
        query = "Explain in detail how a run survives a worker crash"
        state = await (await start_run(client, settings, query)).result()
    assert state.status is RunStatus.COMPLETED
    assert state.reflection_retries == 1
    assert state.critique and "detail" in state.critique
    assert "Details:" in (state.answer or "")
    assert [n.name for n in state.nodes].count("reflect") == 2
    assert state.reflection is not None and state.reflection.score >= 0.7


async def test_reflection_retries_are_bounded(client: Client, settings: Settings, worker):
    async with worker():
        query = "Explain in detail how a run survives a worker crash"
        handle = await start_run(client, settings, query, max_reflection_retries=0)
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    assert state.reflection_retries == 0
    assert [n.name for n in state.nodes].count("reflect") == 1
    assert state.reflection is not None and state.reflection.score < 0.7


async def test_a_tool_that_fails_for_good_leads_to_a_question(
    client: Client, settings: Settings, worker
):
    async with worker():
        handle = await start_run(client, settings, "What is 1 / 0?")
        state = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        await handle.cancel()
    tool = next(n for n in state.nodes if n.name == "tool-calculator")
    assert tool.status is NodeStatus.FAILED
    assert "division by zero" in (tool.error or "")
    assert state.question and "division by zero" in state.question
    assert state.tool_history[0].ok is False
