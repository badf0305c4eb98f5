"""A test-only workflow registered as `AgentWorkflow` whose code raises a plain exception: its
workflow task fails on every attempt (Temporal retries it forever), so the run is stuck."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

FAILURE = "this run's workflow code fails on every attempt"


@workflow.defn(name="AgentWorkflow", sandboxed=False)
class BrokenAgentWorkflow:
    @workflow.run
    async def run(self, *_args: Any) -> None:
        raise RuntimeError(FAILURE)
