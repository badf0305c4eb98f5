"""The `wait` tool: a long activity that heartbeats (a stand-in for slow work: a long API call,
a batch job). Cancellation and worker crashes reach it through its heartbeats."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from activities.tools.registry import Tool, ToolContext, ToolResult


class WaitArgs(BaseModel):
    seconds: float = Field(gt=0, le=300, description="How long the work takes.")


async def _wait(args: WaitArgs, ctx: ToolContext) -> ToolResult:
    await asyncio.sleep(args.seconds)  # the activity's heartbeating wrapper keeps it alive
    return ToolResult(text=f"waited {args.seconds:g}s")


def wait_tool() -> Tool:
    return Tool(name="wait", description="Wait (slow work).", args_model=WaitArgs, func=_wait)
