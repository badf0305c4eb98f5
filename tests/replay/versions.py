"""AgentWorkflow as it was before the `skip-calculation-reflection` change, and the same change
made without `workflow.patched` — for the versioning tests (docs/versioning.md)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from activities.models import Intent
    from workflows.agent import AgentWorkflow
    from workflows.state import AgentState, Reflection, Stage


@workflow.defn(name="AgentWorkflow")
class AgentWorkflowBeforeChange(AgentWorkflow):
    """The code deployed before the change: every answer is reflected on."""

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        super().__init__(raw)

    @workflow.run
    async def run(self, raw: RawValue) -> AgentState:
        return await super().run(raw)

    async def _reflect(self) -> None:
        await self._reflect_with_activity()


@workflow.defn(name="AgentWorkflow")
class AgentWorkflowUnguardedChange(AgentWorkflow):
    """The same change without `workflow.patched`: old histories no longer replay."""

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        super().__init__(raw)

    @workflow.run
    async def run(self, raw: RawValue) -> AgentState:
        return await super().run(raw)

    async def _reflect(self) -> None:
        state = self._state
        if state.intent == Intent.CALCULATION.value:
            state.reflection = Reflection(score=1.0, critique="exact calculator result")
            self._update_status(stage=Stage.DONE)
            return
        await self._reflect_with_activity()
