"""Stage 1, intent analysis: classify the query; simple chat is answered here."""

from __future__ import annotations

from temporalio import activity

from activities.base import StageActivities
from activities.models import Intent, IntentInput, IntentOutput
from activities.routing import rule_intent


class IntentActivities(StageActivities):
    @activity.defn(name="analyze_intent")
    async def analyze_intent(self, req: IntentInput) -> IntentOutput:
        decided = rule_intent(req)
        if decided is not None:
            return decided
        out = await self.call(self.provider.classify(req))
        if out.intent is Intent.SIMPLE_CHAT and not req.small_talk:
            # The agent answers nothing as small talk: the pipeline answers it in full.
            return IntentOutput(intent=Intent.QUESTION, usage=out.usage)
        return out
