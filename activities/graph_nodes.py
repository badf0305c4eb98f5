"""Activities of graph nodes that need the outside world: `llm` (one completion).

`tool` nodes reuse the context stage's `run_tool` activity; `condition` and `transform` nodes
are pure and evaluated by the workflow itself; `agent` nodes are child workflows.
"""

from __future__ import annotations

from temporalio import activity

from activities.base import StageActivities
from activities.models import CompleteInput, CompleteOutput


class GraphNodeActivities(StageActivities):
    @activity.defn(name="graph_llm")
    async def graph_llm(self, req: CompleteInput) -> CompleteOutput:
        out = await self.call(self.provider.complete(req))
        return out.model_copy(update={"attempt": activity.info().attempt})
