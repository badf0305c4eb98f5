"""What every stage's activities share: the injected provider and tools, and heartbeating."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from activities.heartbeat import heartbeating
from activities.llm import LLMProvider
from activities.tools.registry import ToolRegistry

T = TypeVar("T")


class StageActivities:
    def __init__(self, provider: LLMProvider, tools: ToolRegistry) -> None:
        self.provider = provider
        self.tools = tools

    async def call(self, work: Awaitable[T]) -> T:
        return await heartbeating(work)


def agent_activities(provider: LLMProvider, tools: ToolRegistry) -> list[Callable[..., Any]]:
    """Every activity (agent pipeline and graph nodes), bound to one provider and tool registry."""
    from activities.context import ContextActivities
    from activities.executor import ExecutorActivities
    from activities.graph_nodes import GraphNodeActivities
    from activities.intent import IntentActivities
    from activities.reflection import ReflectionActivities

    intent = IntentActivities(provider, tools)
    context = ContextActivities(provider, tools)
    executor = ExecutorActivities(provider, tools)
    reflection = ReflectionActivities(provider, tools)
    graph = GraphNodeActivities(provider, tools)
    return [
        graph.graph_llm,
        intent.analyze_intent,
        context.assess_context,
        context.run_tool,
        executor.make_plan,
        executor.run_step,
        reflection.reflect,
    ]
