"""The OpenAI-compatible provider through the real `openai` client, against aimock (a maintained
OpenAI protocol mock, a real process; tests/aimock/mock.py), driving every stage of real runs."""

from __future__ import annotations

import json
import logging

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.openai_provider import OpenAIProvider
from config import Settings
from tests.aimock.mock import AIMOCK_KEY, AiMock
from tests.integration.graphs import start_graph
from tests.integration.runs import start_run, wait_for_status
from workflows.agent import AgentWorkflow
from workflows.agent_spec import AgentDefinition
from workflows.state import RunStatus, UserInput

PRICES = {"gpt-4o-mini": (0.15, 0.60)}


def provider(mock: AiMock, key: str = AIMOCK_KEY, timeout_s: float = 10) -> OpenAIProvider:
    return OpenAIProvider(
        api_key=key,
        base_url=f"{mock.base_url}/v1",
        model="gpt-4o-mini",
        timeout_s=timeout_s,
        json_retries=2,
        prices=PRICES,
    )


def cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * 0.15 + tokens_out * 0.60) / 1_000_000


async def test_chat_with_usage_and_cost(client: Client, settings: Settings, worker, aimock: AiMock):
    aimock.script(
        intent=[
            {
                "content": {"intent": "simple_chat", "answer": "Hi there!"},
                "usage": {"prompt_tokens": 50, "completion_tokens": 5},
            }
        ]
    )
    async with worker(provider=provider(aimock)):
        state = await (await start_run(client, settings, "hello")).result()
    assert state.status is RunStatus.COMPLETED and state.answer == "Hi there!"
    assert (state.usage.tokens_in, state.usage.tokens_out, state.usage.calls) == (50, 5, 1)
    assert state.usage.cost_usd == pytest.approx(cost(50, 5))
    assert state.nodes[0].usage is not None and state.nodes[0].usage.tokens_in == 50
    request = aimock.requests("intent")[0]["body"]
    assert request["response_format"]["type"] == "json_schema"
    assert request["model"] == "gpt-4o-mini"


async def test_tool_round_plan_steps_and_streamed_answer(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(
        context=[
            {"toolCalls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
            {"content": {"sufficiency": "SUFFICIENT", "question": None}},
        ],
        plan=[{"content": {"steps": ["Compute", "Write the answer"]}}],
        step=[
            {"content": "17 * 23 = 391"},
            {
                "content": "The answer is 391.",
                "usage": {"prompt_tokens": 30, "completion_tokens": 4},
            },
        ],
    )
    async with worker(provider=provider(aimock)):
        # In words: no rule recognises it, so the model routes it (native tool calling).
        state = await (
            await start_run(client, settings, "Multiply seventeen by twenty-three")
        ).result()
    assert state.status is RunStatus.COMPLETED
    assert state.answer == "The answer is 391."
    assert [(t.name, t.ok, t.result) for t in state.tool_history] == [
        ("calculator", True, "17 * 23 = 391")
    ]
    context_request = aimock.requests("context")[0]["body"]
    assert context_request["tools"][0]["function"]["name"] in {"append_note", "calculator"}
    assert "calculator" in {t["function"]["name"] for t in context_request["tools"]}
    second_round = aimock.requests("context")[1]["body"]["messages"][1]["content"]
    assert "17 * 23 = 391" in second_round  # the tool's result went back to the model
    steps = aimock.requests("step")
    assert [bool(r["body"].get("stream")) for r in steps] == [False, True]
    # Usage summed over every call (intent, 2 context rounds, plan, 2 steps, reflect): six at
    # the server's default 100/20 tokens, the streamed step's 30/4.
    assert state.usage.calls == 7
    assert (state.usage.tokens_in, state.usage.tokens_out) == (630, 124)
    assert state.usage.cost_usd == pytest.approx(cost(630, 124))


async def test_arithmetic_reaches_the_calculator_by_rule(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    # The model would call it small talk and never call a tool: the rule decides instead.
    aimock.script(
        intent=[{"content": {"intent": "simple_chat", "answer": "Nice numbers!"}}],
        context=[{"content": {"sufficiency": "INSUFFICIENT", "question": "Which numbers?"}}],
    )
    async with worker(provider=provider(aimock)):
        state = await (await start_run(client, settings, "What is 17 * 23?")).result()
    assert state.status is RunStatus.COMPLETED and state.intent == "calculation"
    assert [(t.name, t.ok, t.result) for t in state.tool_history] == [
        ("calculator", True, "17 * 23 = 391")
    ]
    assert state.answer  # the model's streamed text
    assert aimock.requests("intent") == [] and aimock.requests("context") == []


async def test_blank_small_talk_reply_falls_through_to_the_pipeline(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(intent=[{"content": {"intent": "simple_chat", "answer": "  "}}])
    async with worker(provider=provider(aimock)):
        state = await (await start_run(client, settings, "hi")).result()
    assert state.status is RunStatus.COMPLETED and state.answer == "The answer."
    assert state.intent == "question"
    assert [n.name for n in state.nodes][:3] == ["intent", "list-tools", "context-round-1"]


async def test_small_talk_asks_for_a_reply_with_the_intent(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    # The schema sent says what the server's grammar must enforce: simple_chat with a reply.
    async with worker(provider=provider(aimock)):
        await (await start_run(client, settings, "hello")).result()
    schema = aimock.requests("intent")[0]["body"]["response_format"]["json_schema"]["schema"]
    chat, pipeline = schema["anyOf"]
    assert chat["properties"]["intent"] == {"const": "simple_chat"}
    assert chat["required"] == ["intent", "answer"]
    assert chat["properties"]["answer"]["minLength"] == 1
    assert "simple_chat" not in pipeline["properties"]["intent"]["enum"]


async def test_an_agent_without_small_talk_runs_the_pipeline_for_a_greeting(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    # Offered question or task only; a server that ignores the schema and says simple_chat
    # anyway is overruled.
    aimock.script(intent=[{"content": {"intent": "simple_chat", "answer": "Hi!"}}])
    agent = AgentDefinition(name="no-chat", small_talk=False, tools=[])
    async with worker(provider=provider(aimock)):
        state = await (await start_run(client, settings, "hello", agent=agent)).result()
    assert state.status is RunStatus.COMPLETED and state.answer == "The answer."
    assert state.intent == "question" and state.reflection is not None
    schema = aimock.requests("intent")[0]["body"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["intent"]["enum"] == ["question", "task"]


async def test_a_blank_final_answer_fails_the_run_with_why(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(step=[{"content": " \n "}])
    async with worker(provider=provider(aimock)):
        handle = await start_run(client, settings, "Tell me about durable runs")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query(AgentWorkflow.get_state)
    assert state.status is RunStatus.FAILED
    assert any("produced no answer" in e for e in state.errors)


async def test_insufficient_context_asks_the_user(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(
        context=[
            {
                "content": {
                    "sufficiency": "INSUFFICIENT",
                    "question": "Which city are you leaving from?",
                }
            }
        ]
    )
    async with worker(provider=provider(aimock)):
        handle = await start_run(client, settings, "Plan my trip")
        waiting = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        assert waiting.question == "Which city are you leaving from?"
        await handle.execute_update(AgentWorkflow.submit_input, UserInput(text="From Porto"))
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED
    later = aimock.requests("context")[-1]["body"]["messages"][1]["content"]
    assert "User: From Porto" in later


async def test_reflection_below_threshold_re_executes_with_the_critique(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(
        reflect=[
            {"content": {"score": 0.3, "critique": "Cite a source."}},
            {"content": {"score": 0.95, "critique": "Good."}},
        ]
    )
    async with worker(provider=provider(aimock)):
        state = await (await start_run(client, settings, "Why is the sky blue?")).result()
    assert state.reflection_retries == 1 and state.reflection and state.reflection.score == 0.95
    plans = aimock.requests("plan")
    assert len(plans) == 2 and "Cite a source." in plans[1]["body"]["messages"][1]["content"]


async def test_a_malformed_answer_is_sent_back_and_then_fixed(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(
        intent=[
            {"content": "Sure! The intent is a question."},
            {"content": {"intent": "simple_chat", "answer": "Hello!"}},
        ]
    )
    async with worker(provider=provider(aimock)):
        state = await (await start_run(client, settings, "hey")).result()
    assert state.answer == "Hello!"
    retry = aimock.requests("intent")[1]["body"]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! The intent is a question."}
    assert "not valid" in retry[-1]["content"]


async def test_an_answer_that_stays_malformed_fails_for_good(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(intent=[{"content": "nope"}] * 3)
    async with worker(provider=provider(aimock)):
        handle = await start_run(client, settings, "hey")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "did not match IntentAnswer after 3 tries" in str(failed.value.cause)
    assert len(aimock.requests("intent")) == 3  # not retried by Temporal on top


async def test_a_refused_api_key_fails_for_good_and_says_what_to_fix(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    async with worker(provider=provider(aimock, key="sk-wrong")):
        handle = await start_run(client, settings, "hey")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    message = str(failed.value.cause)
    assert "DURABLE_AGENT_OPENAI_API_KEY" in message and "401" in message
    # Refused once, not retried.
    history = await handle.fetch_history()
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1]
    assert "sk-wrong" not in message


@pytest.mark.parametrize(
    "failure",
    [
        {
            "error": {"message": "Rate limit reached", "type": "rate_limit"},
            "status": 429,
            "retryAfter": 1,
        },
        {"error": {"message": "The server had an error", "type": "server_error"}, "status": 500},
        {"error": {"message": "Overloaded", "type": "server_error"}, "status": 503},
        {"content": "{}", "chaos": {"malformedRate": 1}},
        {"content": "{}", "chaos": {"disconnectRate": 1}},
        # Beyond the provider's timeout.
        {"content": {"intent": "question", "answer": None}, "chaos": {"latencyMs": 3000}},
    ],
    ids=["429", "500", "503", "malformed-body", "disconnect", "timeout"],
)
async def test_transient_failures_are_retried_by_temporal(
    client: Client, settings: Settings, worker, aimock: AiMock, failure: dict
):
    aimock.script(intent=[failure, {"content": {"intent": "simple_chat", "answer": "Hi"}}])
    async with worker(provider=provider(aimock, timeout_s=1.5)):
        state = await (await start_run(client, settings, "hello")).result()
    # "Hi" is the stage's second fixture: the first request got the failure, and Temporal's
    # retry got the answer (a timed-out request leaves no journal entry; the others do).
    assert state.status is RunStatus.COMPLETED and state.answer == "Hi"
    assert aimock.requests("intent")[-1]["status"] == 200


async def test_not_found_model_fails_for_good(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(
        intent=[
            {
                "error": {"message": "The model does not exist", "type": "invalid_request_error"},
                "status": 404,
            }
        ]
    )
    async with worker(provider=provider(aimock)):
        handle = await start_run(client, settings, "hello")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "DURABLE_AGENT_MODEL" in str(failed.value.cause)


async def test_graph_llm_nodes_use_the_provider(
    client: Client, settings: Settings, worker, aimock: AiMock
):
    aimock.script(complete=[{"content": "Dear customer, your refund is on its way."}])
    spec = {
        "name": "one_llm",
        "entry": "reply",
        "nodes": [
            {"id": "reply", "type": "llm", "config": {"prompt": "Reply to: {{ input.ticket }}"}}
        ],
    }
    async with worker(provider=provider(aimock)):
        handle = await start_graph(client, settings, spec, {"ticket": "refund?"})
        state = await handle.result()
    assert state.outputs["reply"]["value"]["text"] == "Dear customer, your refund is on its way."
    sent = aimock.requests("complete")[0]["body"]["messages"][1]["content"]
    assert sent == "Reply to: refund?"
    assert state.usage.calls == 1


async def test_the_api_key_never_reaches_history_events_or_logs(
    client: Client,
    settings: Settings,
    worker,
    aimock: AiMock,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    aimock.script(
        context=[
            {"toolCalls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}]},
        ]
    )
    async with worker(provider=provider(aimock)):
        handle = await start_run(client, settings, "Add two and two")
        state = await handle.result()
        history = json.dumps(json.loads((await handle.fetch_history()).to_json()))
    # It was used (aimock accepts no other key) ...
    assert aimock.requests("intent")[0]["status"] == 200
    # ... and is nowhere else.
    assert AIMOCK_KEY not in history
    assert AIMOCK_KEY not in state.model_dump_json()
    assert AIMOCK_KEY not in caplog.text
    assert AIMOCK_KEY not in repr(Settings(openai_api_key=AIMOCK_KEY))
