"""Activities of graph nodes that need the outside world: `llm` (one completion).

`tool` nodes reuse the context stage's `run_tool` activity; `condition` and `transform` nodes
are pure and evaluated by the workflow itself; `agent` nodes are child workflows.
"""

from __future__ import annotations

from temporalio import activity

from activities.base import StageActivities
from activities.models import CompleteInput, CompleteOutput


@activity.defn(name="graph_yield")
async def graph_yield() -> None:
    """Does nothing. A graph run calls it as a local activity after a run of nodes evaluated by
    the workflow itself: awaiting it ends the activation (so the deadlock detector never fires)
    without a round trip to the server and with one history event."""


class GraphNodeActivities(StageActivities):
    @activity.defn(name="graph_llm")
    async def graph_llm(self, req: CompleteInput) -> CompleteOutput:
        out = await self.call(self.provider.complete(req))
        return out.model_copy(update={"attempt": activity.info().attempt})
