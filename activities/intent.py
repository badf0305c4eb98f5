"""Stage 1, intent analysis: classify the query; simple chat is answered here."""

from __future__ import annotations

from temporalio import activity

from activities.base import StageActivities
from activities.models import IntentInput, IntentOutput
from activities.routing import rule_intent


class IntentActivities(StageActivities):
    @activity.defn(name="analyze_intent")
    async def analyze_intent(self, req: IntentInput) -> IntentOutput:
        decided = rule_intent(req)
        if decided is not None:
            return decided
        return await self.call(self.provider.classify(req))
