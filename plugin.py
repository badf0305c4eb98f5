"""The durable-agent Temporal plugin: everything a worker or a replayer needs to host our runs
(the workflows, every activity bound to one LLM provider and one tool registry, and the
pydantic data converter), in one object.

    Worker(client, task_queue=..., plugins=[DurableAgentPlugin(provider, tools)])
    Replayer(workflows=[], plugins=[DurableAgentPlugin()])
    Client.connect(address, plugins=[DurableAgentPlugin()])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio.converter import PayloadCodec
from temporalio.plugin import SimplePlugin
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.context import ContextActivities
from activities.executor import ExecutorActivities
from activities.graph_nodes import GraphNodeActivities, graph_yield
from activities.intent import IntentActivities
from activities.llm import LLMProvider
from activities.reflection import ReflectionActivities
from activities.tools.registry import ToolRegistry
from codec import data_converter
from workflows.agent import AgentWorkflow
from workflows.graph import GraphWorkflow

WORKFLOWS: list[type] = [AgentWorkflow, GraphWorkflow]
# Our modules that workflows import, loaded once per worker instead of once per run. The sandbox
# re-executes every module it does not pass through for each new run (and each cache eviction):
# for us that was a third of the worker's CPU under load, and it also threw away the compiled
# CEL programs and schemas cached by `lru_cache`. They are safe to share because they are
# deterministic and keep no per-run state at module level: no I/O, no clock, no randomness,
# caches keyed by the expression text only. The sandbox does not watch calls made from passed-
# through modules: the replay tests (tests/replay) replay every history in the SDK's strict
# sandbox as well, which does, on every recorded path.
PASSTHROUGH_MODULES = ("workflows", "activities", "shared", "codec", "cel", "jsonschema_rs")
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
)
# Inputs, outputs and query results are pydantic models on the wire (encrypted with a codec:
# `codec.data_converter`, which the client uses too).
DATA_CONVERTER = data_converter()


def agent_activities(
    provider: LLMProvider, tools: ToolRegistry, list_timeout_s: float = 20.0
) -> list[Callable[..., Any]]:
    """Every activity (agent pipeline and graph nodes), bound to one provider and tool registry."""
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


class DurableAgentPlugin(SimplePlugin):
    def __init__(
        self,
        provider: LLMProvider | None = None,
        tools: ToolRegistry | None = None,
        *,
        workflows: Sequence[type] | None = None,
        list_timeout_s: float = 20.0,
        codec: PayloadCodec | None = None,
        strict_sandbox: bool = False,
    ) -> None:
        """`provider` and `tools` are what the activities use (a replayer needs neither);
        `workflows` replaces ours (tests of older workflow code); `list_timeout_s` bounds how
        long listing an MCP server's tools may take; `codec` decrypts payloads (a replayer of
        encrypted histories needs it; a worker takes its client's); `strict_sandbox` re-imports
        the workflow modules inside the sandbox for every run, as the SDK does by default, so
        that the sandbox checks every call they make (the replay tests run both ways)."""
        activities = (
            agent_activities(provider, tools, list_timeout_s) if provider and tools else None
        )
        super().__init__(
            "durable-agent",
            data_converter=data_converter(codec),
            workflows=list(workflows or WORKFLOWS),
            workflow_runner=SandboxedWorkflowRunner() if strict_sandbox else WORKFLOW_RUNNER,
            activities=activities,
        )
