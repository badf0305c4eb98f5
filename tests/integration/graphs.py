"""Starting graph runs directly with the Temporal client, and tools that misbehave on purpose."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowHandle

from activities.tools.builtin import default_registry
from activities.tools.registry import Tool, ToolContext, ToolRegistry, ToolResult
from config import PROJECT_ROOT, Settings
from workflows.graph import GraphWorkflow
from workflows.graph_spec import validate
from workflows.state import GraphInput, GraphState


class NoArgs(BaseModel):
    pass


async def _flaky(args: NoArgs, ctx: ToolContext) -> ToolResult:
    if activity.info().attempt < 2:
        raise ConnectionError("transient failure")
    return ToolResult(text=f"ok on attempt {activity.info().attempt}")


async def _broken(args: NoArgs, ctx: ToolContext) -> ToolResult:
    raise ConnectionError("the service is down")


async def _slow(args: NoArgs, ctx: ToolContext) -> ToolResult:
    await asyncio.sleep(300)
    return ToolResult(text="too late")


def misbehaving_tools(settings: Settings) -> ToolRegistry:
    registry = default_registry(settings.knowledge_dir, settings.notes_file)
    for name, func in (("flaky", _flaky), ("broken", _broken), ("slow", _slow)):
        registry.register(Tool(name=name, description=name, args_model=NoArgs, func=func))
    return registry


def catalog_spec(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(Path(PROJECT_ROOT, "graphs", f"{name}.yaml").read_text()))


async def start_graph(
    client: Client,
    settings: Settings,
    spec: dict[str, Any],
    graph_input: dict[str, Any],
    **options: Any,
) -> WorkflowHandle[GraphWorkflow, GraphState]:
    """Start a graph run as the gateway would; `options` are more GraphInput fields."""
    checked = validate(spec, misbehaving_tools(settings).names())
    assert checked.ok, checked.problems
    assert checked.spec is not None
    return await client.start_workflow(
        GraphWorkflow.run,
        GraphInput(spec=checked.spec, input=graph_input, **options),
        id=f"graph-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
    )


async def graph_state(handle: WorkflowHandle[Any, Any]) -> GraphState:
    state: GraphState = await handle.query(GraphWorkflow.get_state)
    return state
