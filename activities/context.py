"""Stage 2, context gathering: judge sufficiency, propose tool calls, and run one tool call.

The loop over rounds is the workflow's; each tool call is its own activity, so a crash never
repeats a finished call and each shows in the Web UI.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import StageActivities
from activities.models import ContextInput, ContextOutput, ToolCallInput, ToolCallOutput
from activities.tools.registry import ToolContext, ToolError


class ContextActivities(StageActivities):
    @activity.defn(name="assess_context")
    async def assess_context(self, req: ContextInput) -> ContextOutput:
        return await self.call(self.provider.assess(req, self.tools))

    @activity.defn(name="run_tool")
    async def run_tool(self, req: ToolCallInput) -> ToolCallOutput:
        info = activity.info()
        ctx = ToolContext(
            idempotency_key=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
        )
        try:
            tool = self.tools.get(req.name)
            result = await self.call(tool(req.arguments, ctx))
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
