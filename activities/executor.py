"""Stage 3, execution: make a plan, then run each step (each step is its own activity)."""

from __future__ import annotations

from temporalio import activity

from activities.base import StageActivities
from activities.models import PlanInput, PlanOutput, StepInput, StepOutput


class ExecutorActivities(StageActivities):
    @activity.defn(name="make_plan")
    async def make_plan(self, req: PlanInput) -> PlanOutput:
        return await self.call(self.provider.plan(req))

    @activity.defn(name="run_step")
    async def run_step(self, req: StepInput) -> StepOutput:
        return await self.call(self.provider.run_step(req))
