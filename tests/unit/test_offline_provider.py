import pytest

from activities.llm import OfflineProvider, is_small_talk
from activities.models import ContextInput, Intent, IntentInput, Sufficiency
from activities.tools.builtin import default_registry
from activities.tools.registry import ToolContext
from config import Settings
from shared import ToolRecord


@pytest.mark.parametrize("text", ["hi", "Hello!", "thanks", "thank you", "Good morning"])
def test_small_talk(text: str) -> None:
    assert is_small_talk(text)


@pytest.mark.parametrize("text", ["hi, what is 2 + 2?", "How do I deploy this?", ""])
def test_not_small_talk(text: str) -> None:
    assert not is_small_talk(text)


async def test_classify() -> None:
    provider = OfflineProvider()
    assert (await provider.classify(IntentInput(query="hi"))).intent is Intent.SIMPLE_CHAT
    assert (await provider.classify(IntentInput(query="What is 2*3?"))).intent is Intent.CALCULATION
    assert (await provider.classify(IntentInput(query="Why?"))).intent is Intent.QUESTION


async def test_assess_asks_for_input_when_the_tools_found_nothing() -> None:
    tools = default_registry(Settings().knowledge_dir)
    provider = OfflineProvider()
    searched = ToolRecord(
        name="search_docs", arguments={"query": "Plan my trip"}, ok=True, result="No document"
    )
    out = await provider.assess(
        ContextInput(query="Plan my trip", intent=Intent.QUESTION, tool_history=[searched]), tools
    )
    assert out.sufficiency is Sufficiency.INSUFFICIENT
    assert out.tool_calls == [] and out.question and "Plan my trip" in out.question


async def test_search_docs_finds_the_right_document() -> None:
    tools = default_registry(Settings().knowledge_dir)
    ctx = ToolContext(idempotency_key="wf/1")
    hit = await tools.get("search_docs")({"query": "How does a run survive a worker crash?"}, ctx)
    assert hit.text.startswith("[durability.md]") and not hit.empty
    miss = await tools.get("search_docs")({"query": "Plan my trip to Lisbon"}, ctx)
    assert miss.empty


async def test_tool_arguments_are_validated() -> None:
    from activities.tools.registry import ToolError

    tools = default_registry(Settings().knowledge_dir)
    with pytest.raises(ToolError, match="expression"):
        await tools.get("calculator")({"expr": "1+1"}, ToolContext(idempotency_key="k"))
    with pytest.raises(ToolError, match="unknown tool"):
        tools.get("shell")


async def test_an_agent_without_small_talk_never_answers_at_the_intent_stage() -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.intent import IntentActivities

    stage = IntentActivities(OfflineProvider(), default_registry(Settings().knowledge_dir))
    env = ActivityEnvironment()
    out = await env.run(stage.analyze_intent, IntentInput(query="hello", small_talk=False))
    assert out.intent is Intent.QUESTION and out.answer is None
    chat = await env.run(stage.analyze_intent, IntentInput(query="hello"))
    assert chat.intent is Intent.SIMPLE_CHAT
