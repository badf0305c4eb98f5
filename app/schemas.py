"""HTTP request and response models of the gateway (not the workflows' own models)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus

from activities.tools.catalog import Approval
from shared import RUN_AGENT, RUN_KIND, RUN_STAGE, RUN_STATUS
from workflows.agent_spec import AgentDefinition
from workflows.graph_spec import GraphSpec
from workflows.state import (
    MAX_REASON_CHARS,
    AgentState,
    ApprovalStatus,
    GraphState,
    NodeStatus,
    RunStateBase,
    RunStatus,
    Stage,
)

if TYPE_CHECKING:
    from app.run_access import RunRead

# What Temporal's own status says when the workflow closed before it could record ours
# (terminated, timed out) or has not yet recorded it.
_FROM_TEMPORAL = {
    WorkflowExecutionStatus.RUNNING: RunStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.FAILED,
}


class RunCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "What is 17 * 23?"},
                {"agent": "support", "query": "How do I answer a waiting run?"},
                {"graph": "triage", "input": {"ticket": "I was charged twice"}},
            ]
        },
    )

    query: str | None = Field(
        default=None, min_length=1, description="An agent run: what it should answer or do."
    )
    agent: str | dict[str, Any] | None = Field(
        default=None,
        description="An agent run: the name of a catalog agent (`GET /api/v1/agents`), or an "
        "inline agent definition. Unset: the `default` agent.",
    )
    graph: str | dict[str, Any] | None = Field(
        default=None,
        description="A graph run: the name of a catalog graph, or an inline graph definition.",
    )
    input: dict[str, Any] | None = Field(
        default=None, description="A graph run's input (the `input` variable of its expressions)."
    )
    breakpoints: list[str] | Literal["*"] | None = Field(
        default=None,
        max_length=1000,
        description='Graph runs, step-through debugging: pause before these node ids ("*": before '
        "every node). `POST .../resume` goes on; `POST .../step` runs one node and pauses again.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> RunCreate:
        if (self.query is None) == (self.graph is None):
            raise ValueError("give either `query` (an agent run) or `graph` (a graph run)")
        if self.agent is not None and self.query is None:
            raise ValueError("`agent` belongs to agent runs: give a `query` with it")
        if self.query is not None and (self.input is not None or self.breakpoints is not None):
            raise ValueError(
                "`input` and `breakpoints` belong to graph runs; an agent run takes only `query`"
            )
        return self


class RunCreated(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"run_id": "run-4f1c…", "status": "pending"}]}
    )

    run_id: str = Field(description="The run's id; also its Temporal workflow id.")
    status: RunStatus | Literal["stuck"]


class InputBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "The budget is 2,000 euros."},
                {"text": "yes", "node_id": "approval"},
            ]
        },
    )

    text: str = Field(min_length=1, description="The answer to the run's question.")
    node_id: str | None = Field(
        default=None,
        max_length=64,
        description="Graph runs: the waiting node this answers (one of `questions`); optional "
        "when exactly one question is open. An `agent` node's id forwards the answer to its "
        "child run.",
    )


class ControlAccepted(BaseModel):
    run_id: str
    status: RunStatus | str = Field(
        description="The run's status after the request, or `cancelling` while it winds down."
    )
    pending: bool = Field(
        default=False,
        description="Input only (HTTP 202): the answer was sent and is kept in the run's "
        "history, but the run had not taken it when this reply was due (a busy worker). Read "
        "the run to see it applied; a retry with the same Idempotency-Key is applied once.",
    )


class NodeView(BaseModel):
    id: str
    name: str
    status: NodeStatus
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    type: str | None = None
    attempts: int = 0
    runs: int = 0
    usage: UsageView | None = None
    child_run_id: str | None = Field(
        default=None, description="Agent nodes: the child run's id, from the moment it starts."
    )


class UsageView(BaseModel):
    tokens_in: int
    tokens_out: int
    cost_usd: float = 0.0
    calls: int = 0


class ToolCallView(BaseModel):
    name: str
    arguments: dict[str, Any]
    ok: bool
    result: str


class ApprovalView(BaseModel):
    """A tool call held for a person's decision (`pending` until decided)."""

    id: str
    tool: str
    arguments: dict[str, Any]
    requested_at: datetime
    status: ApprovalStatus
    reason: str | None = None
    decided_at: datetime | None = None
    node_id: str | None = None


class ApprovalBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"approve": True}, {"approve": False, "reason": "not this file"}]
        },
    )

    approve: bool = Field(description="true: the call runs; false: it does not.")
    reason: str = Field(
        default="",
        max_length=MAX_REASON_CHARS,
        description="Why (a denial's reason is what the agent's next round reads).",
    )


class ApprovalAnswer(BaseModel):
    run_id: str
    approval_id: str
    decision: ApprovalStatus
    status: RunStatus = Field(description="The run's status after the decision.")


class ToolView(BaseModel):
    name: str = Field(description="What a run or a graph `tool` node calls it.")
    source: str = Field(description='"builtin", "python" or "mcp:<server>".')
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema of its arguments.")
    approval: Approval = Field(description="`always`: each call waits for a person.")


class ToolList(BaseModel):
    tools: list[ToolView]
    unavailable: dict[str, str] = Field(
        default_factory=dict,
        description="MCP servers that could not be listed now, with why (their tools are absent).",
    )


class EventView(BaseModel):
    at: datetime
    kind: str
    message: str


class QuestionView(BaseModel):
    node_id: str = Field(description="Answer with this `node_id` in `POST .../input`.")
    question: str
    asked_at: datetime
    deadline: datetime | None = None
    run_id: str | None = Field(
        default=None,
        description="Set when an agent node's child run asks (answered through "
        "this run's input with the node's id, or the child's own id).",
    )


class RunView(BaseModel):
    """A run's state. Agent runs fill `query`…`reflection_score`; graph runs fill
    `graph`…`steps`. `status` is also `stuck` (a status of this view only, never set by a
    workflow) while the run's workflow task keeps failing; `errors` then says why."""

    run_id: str
    kind: str
    status: RunStatus | Literal["stuck"]
    question: str | None
    errors: list[str]
    nodes: list[NodeView]
    usage: UsageView
    events: list[EventView]
    created_at: datetime
    updated_at: datetime
    # agent runs
    query: str | None = None
    agent: str | None = Field(default=None, description="Agent runs: the agent's name.")
    stage: Stage | None = None
    intent: str | None = None
    answer: str | None = None
    tool_calls: list[ToolCallView] = Field(default_factory=list)
    approvals: list[ApprovalView] = Field(default_factory=list)
    plan: list[str] = Field(default_factory=list)
    reflection_score: float | None = None
    # graph runs
    graph: str | None = None
    version: str | None = None
    variables: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    waiting_node: str | None = None
    questions: list[QuestionView] = Field(
        default_factory=list, description="Graph runs: every open question, oldest first."
    )
    paused: bool = False
    steps: int | None = None

    @classmethod
    def from_read(cls, read: RunRead) -> RunView:
        if read.state is not None:
            return cls.from_state(read.state).model_copy(
                update={"status": read.status, "errors": read.errors}
            )
        # The workflow could not answer: what describe() and its history say.
        created = read.created_at or datetime.now().astimezone()
        return cls(
            run_id=read.run_id,
            kind=read.kind,
            status=read.status,
            question=None,
            errors=read.errors,
            nodes=[],
            usage=UsageView(tokens_in=0, tokens_out=0),
            events=[],
            created_at=created,
            updated_at=read.updated_at or created,
        )

    @classmethod
    def from_state(cls, state: RunStateBase) -> RunView:
        common = {
            "run_id": state.run_id,
            "kind": state.kind,
            "status": state.status,
            "question": state.question,
            "errors": state.errors,
            "nodes": [NodeView.model_validate(n.model_dump()) for n in state.nodes],
            "usage": UsageView.model_validate(state.usage.model_dump()),
            "events": [EventView.model_validate(e.model_dump()) for e in state.events],
            "approvals": [ApprovalView.model_validate(a.model_dump()) for a in state.approvals],
            "created_at": state.created_at,
            "updated_at": state.updated_at,
            "paused": state.paused,
        }
        if isinstance(state, GraphState):
            return cls(
                **common,
                graph=state.graph,
                version=state.version,
                variables=state.variables,
                outputs=state.outputs,
                waiting_node=state.waiting_node,
                questions=[QuestionView.model_validate(q.model_dump()) for q in state.questions],
                steps=state.steps,
            )
        assert isinstance(state, AgentState)
        return cls(
            **common,
            query=state.query,
            agent=state.agent,
            stage=state.stage,
            intent=state.intent,
            answer=state.answer,
            tool_calls=[ToolCallView.model_validate(t.model_dump()) for t in state.tool_history],
            plan=state.plan,
            reflection_score=state.reflection.score if state.reflection else None,
        )


class RunSummary(BaseModel):
    run_id: str
    kind: str | None
    status: RunStatus
    stage: Stage | None
    created_at: datetime
    closed_at: datetime | None
    agent: str | None = None

    @classmethod
    def from_execution(cls, execution: WorkflowExecution) -> RunSummary:
        attributes = execution.typed_search_attributes
        status = attributes.get(RUN_STATUS)
        stage = attributes.get(RUN_STAGE)
        temporal = execution.status
        closed = temporal is not None and temporal is not WorkflowExecutionStatus.RUNNING
        if status is None or (closed and status not in {s.value for s in _TERMINAL}):
            run_status = _FROM_TEMPORAL.get(temporal or WorkflowExecutionStatus.RUNNING)
        else:
            run_status = RunStatus(status)
        return cls(
            run_id=execution.id,
            kind=attributes.get(RUN_KIND),
            agent=attributes.get(RUN_AGENT),
            status=run_status or RunStatus.RUNNING,
            stage=Stage(stage) if stage else None,
            created_at=execution.start_time,
            closed_at=execution.close_time,
        )


_TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunList(BaseModel):
    runs: list[RunSummary]
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next page; null on the last page."
    )


class GraphSummary(BaseModel):
    name: str
    version: str
    description: str
    nodes: int
    entry: str
    input_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the run's `input` must match (checked at start)."
    )

    @classmethod
    def from_spec(cls, spec: GraphSpec) -> GraphSummary:
        return cls(
            name=spec.name,
            version=spec.version,
            description=spec.description.strip(),
            nodes=len(spec.nodes),
            entry=spec.entry,
            input_schema=spec.input_schema,
        )


class AgentSummary(BaseModel):
    name: str
    version: str
    description: str
    model: str | None = Field(description="Unset: the worker's model.")
    tools: list[str] | None = Field(description="Names or patterns; unset: every tool.")
    structured: bool = Field(description="Whether the answer is JSON (an `output_schema`).")

    @classmethod
    def from_definition(cls, agent: AgentDefinition) -> AgentSummary:
        return cls(
            name=agent.name,
            version=agent.version,
            description=agent.description.strip(),
            model=agent.model,
            tools=agent.tools,
            structured=agent.output_schema is not None,
        )


class GraphValidation(BaseModel):
    valid: bool
    problems: list[dict[str, str]]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail
