"""Stage 2, context gathering: judge sufficiency, propose tool calls, and run one tool call.

The loop over rounds is the workflow's; each tool call is its own activity, so a crash never
repeats a finished call and each shows in the Web UI.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import StageActivities
from activities.models import ContextInput, ContextOutput, ToolCallInput, ToolCallOutput
from activities.routing import rule_context
from activities.tools.catalog import ListToolsInput, ToolCatalog
from activities.tools.registry import ToolContext, ToolError, ToolResult


class ContextActivities(StageActivities):
    # How long listing one MCP server may take (the worker sets it from its settings).
    list_timeout_s = 20.0

    @activity.defn(name="assess_context")
    async def assess_context(self, req: ContextInput) -> ContextOutput:
        # What the run may call: its recorded catalog (the agent's tools only, when its
        # definition names them), else every tool of the registry.
        if req.tools or req.tools_restricted:
            offered: list[str] = [tool.name for tool in req.tools]
        else:
            offered = self.tools.names()
        decided = rule_context(req, offered)
        if decided is not None:
            return decided
        return await self.call(self.provider.assess(req, self.tools))

    @activity.defn(name="list_tools")
    async def list_tools(self, req: ListToolsInput) -> ToolCatalog:
        """Every tool this worker offers, MCP servers asked now. The run records the answer,
        so a replay never asks a server again and a server's later changes never reach it."""
        return await self.call(self.tools.catalog(self.list_timeout_s))

    @activity.defn(name="run_tool")
    async def run_tool(self, req: ToolCallInput) -> ToolCallOutput:
        info = activity.info()
        ctx = ToolContext(
            idempotency_key=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
        )
        try:
            tool = self.tools.get(req.name)
            result = await self.call(tool(req.arguments, ctx))
            if tool.source != "builtin":
                # Name the source, as search_docs does, so an answer can cite it.
                result = ToolResult(text=f"[{tool.name}] {result.text}", empty=result.empty)
        except ApplicationError as exc:
            if exc.type == "ToolError":  # a ToolError wrapped by `call`: final, whatever the try
                raise ApplicationError(
                    exc.message, *exc.details, type="ToolError", non_retryable=True
                ) from None
            raise
        except ToolError as exc:  # raised before the tool ran (unknown tool)
            raise ApplicationError(str(exc), type="ToolError", non_retryable=True) from None
        return ToolCallOutput(
            name=req.name, result=result.text, empty=result.empty, attempt=info.attempt
        )
