"""What workflows, activities and the gateway all speak: the wire types that cross between
them and the names Temporal indexes runs by. Plain data, safe in workflow code; importing it
pulls in neither side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey

# The topic of a run's durable event stream (temporalio.contrib.workflow_streams).
EVENTS_TOPIC = "events"

# Search attributes: what runs are listed and filtered by (Web UI, CLI, the gateway's list).
RUN_STATUS = SearchAttributeKey.for_keyword("RunStatus")
RUN_STAGE = SearchAttributeKey.for_keyword("RunStage")
RUN_KIND = SearchAttributeKey.for_keyword("RunKind")
# Set by the gateway when a run starts (API-key tenant); the workflow never changes it.
TENANT = SearchAttributeKey.for_keyword("Tenant")
# The agent definition an agent run was started with (set at start, never changed).
RUN_AGENT = SearchAttributeKey.for_keyword("RunAgent")
SEARCH_ATTRIBUTES = (RUN_STATUS, RUN_STAGE, RUN_KIND, TENANT, RUN_AGENT)


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0
    # Estimated from the price table in settings (0 for the offline model).
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, other: Usage) -> None:
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost_usd = round(self.cost_usd + other.cost_usd, 8)
        self.calls += other.calls


class StreamEvent(BaseModel):
    """One item of the run's durable event stream (topic `events`), as SSE clients get it.

    `type` is one of `status`, `stage`, `node`, `tool_call`, `question`, `result`; `data` holds
    the fields of that type (e.g. `{"status": "running"}`). `result` is the last event of a run.
    """

    type: str
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class ToolRecord(BaseModel):
    name: str
    arguments: dict[str, Any]
    ok: bool
    result: str
