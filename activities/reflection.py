"""Stage 4, reflection: score the answer and say what to improve."""

from __future__ import annotations

from temporalio import activity

from activities.base import StageActivities
from activities.models import ReflectInput, ReflectOutput


class ReflectionActivities(StageActivities):
    @activity.defn(name="reflect")
    async def reflect(self, req: ReflectInput) -> ReflectOutput:
        return await self.call(self.provider.reflect(req))
