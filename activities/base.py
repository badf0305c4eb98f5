"""What every stage's activities share: the injected provider and tools, and heartbeating."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.llm import LLMProvider
from activities.tools.registry import ToolRegistry

T = TypeVar("T")


class StageActivities:
    def __init__(self, provider: LLMProvider, tools: ToolRegistry) -> None:
        self.provider = provider
        self.tools = tools

    async def call(self, work: Awaitable[T]) -> T:
        try:
            return await heartbeating(work)
        except ApplicationError as exc:
            if exc.details:
                raise
            raise ApplicationError(
                exc.message,
                {"attempt": activity.info().attempt},
                type=exc.type,
                non_retryable=exc.non_retryable,
                next_retry_delay=exc.next_retry_delay,
            ) from exc.__cause__
        except Exception as exc:
            # Same type name (the retry policy matches on it), plus the attempt for the workflow.
            raise ApplicationError(
                str(exc) or type(exc).__name__,
                {"attempt": activity.info().attempt},
                type=type(exc).__name__,
            ) from exc


def agent_activities(
    provider: LLMProvider, tools: ToolRegistry, list_timeout_s: float = 20.0
) -> list[Callable[..., Any]]:
    """Every activity (agent pipeline and graph nodes), bound to one provider and tool registry."""
    from activities.context import ContextActivities
    from activities.executor import ExecutorActivities
    from activities.graph_nodes import GraphNodeActivities, graph_yield
    from activities.intent import IntentActivities
    from activities.reflection import ReflectionActivities

    intent = IntentActivities(provider, tools)
    context = ContextActivities(provider, tools)
    context.list_timeout_s = list_timeout_s
    executor = ExecutorActivities(provider, tools)
    reflection = ReflectionActivities(provider, tools)
    graph = GraphNodeActivities(provider, tools)
    return [
        graph_yield,
        graph.graph_llm,
        intent.analyze_intent,
        context.assess_context,
        context.list_tools,
        context.run_tool,
        executor.make_plan,
        executor.run_step,
        reflection.reflect,
    ]
