"""The one vocabulary of run states (DESIGN.md §3), the transition tables, and the run's state.

Everything here is plain data and pure functions, safe to import into workflow code. An illegal
transition raises :class:`IllegalTransition`: it is a bug, and the tests are meant to catch it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.contrib.workflow_streams import WorkflowStreamState

from activities.tools.catalog import ToolCatalog
from shared import ToolRecord, Usage
from workflows.agent_spec import AgentDefinition
from workflows.graph_spec import GraphSpec
from workflows.limits import Limits
from workflows.scheduler import SchedulerState


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_FOR_INPUT = "waiting_for_input"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Stage(StrEnum):
    INTENT = "intent"
    CONTEXT = "context"
    EXECUTE = "execute"
    REFLECT = "reflect"
    DONE = "done"


class NodeStatus(StrEnum):
    CREATED = "created"
    INITIALIZING = "initializing"
    INITIALIZED = "initialized"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})

# Reference 003's table, with RESUMED folded into PAUSED -> RUNNING (it is an event, not a state).
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.WAITING_FOR_INPUT,
            RunStatus.WAITING_FOR_APPROVAL,
            RunStatus.PAUSED,
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        }
    ),
    # A graph run may wait for an answer and an approval at once (its status shows the approval).
    RunStatus.WAITING_FOR_INPUT: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.WAITING_FOR_APPROVAL,
            RunStatus.PAUSED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        }
    ),
    # Every pending approval decided -> RUNNING (the approved calls run, the denied are reported);
    # a graph run then shows what else it waits for, or its held nodes.
    RunStatus.WAITING_FOR_APPROVAL: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.WAITING_FOR_INPUT,
            RunStatus.PAUSED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        }
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

STAGE_TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.INTENT: frozenset({Stage.CONTEXT, Stage.DONE}),  # simple chat short-circuits to DONE
    Stage.CONTEXT: frozenset({Stage.EXECUTE}),
    Stage.EXECUTE: frozenset({Stage.REFLECT}),
    Stage.REFLECT: frozenset({Stage.EXECUTE, Stage.DONE}),  # EXECUTE again = reflection retry
    Stage.DONE: frozenset(),
}

# Reference 000's lifecycle plus SKIPPED/CANCELLED. An activity node may go straight from CREATED
# to EXECUTING: Temporal schedules it in one command, there is no separate initialisation.
NODE_TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    NodeStatus.CREATED: frozenset(
        {NodeStatus.INITIALIZING, NodeStatus.EXECUTING, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
    ),
    NodeStatus.INITIALIZING: frozenset(
        {NodeStatus.INITIALIZED, NodeStatus.FAILED, NodeStatus.CANCELLED}
    ),
    NodeStatus.INITIALIZED: frozenset(
        {NodeStatus.EXECUTING, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
    ),
    NodeStatus.EXECUTING: frozenset(
        {NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.CANCELLED}
    ),
    NodeStatus.COMPLETED: frozenset(),
    NodeStatus.FAILED: frozenset(),
    NodeStatus.SKIPPED: frozenset(),
    NodeStatus.CANCELLED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A status change the transition tables do not allow (a bug in the caller)."""


def check_run_transition(old: RunStatus, new: RunStatus) -> None:
    if new not in RUN_TRANSITIONS[old]:
        raise IllegalTransition(f"run status {old.value} -> {new.value} is not allowed")


def check_stage_transition(old: Stage, new: Stage) -> None:
    if new not in STAGE_TRANSITIONS[old]:
        raise IllegalTransition(f"stage {old.value} -> {new.value} is not allowed")


def check_node_transition(old: NodeStatus, new: NodeStatus) -> None:
    if new not in NODE_TRANSITIONS[old]:
        raise IllegalTransition(f"node status {old.value} -> {new.value} is not allowed")


class NodeState(BaseModel):
    """One activity of the run (a stage, a tool call, a plan step) as users see it."""

    id: str
    name: str
    status: NodeStatus = NodeStatus.CREATED
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    # Token usage and estimated cost of this node's model calls, when it made any.
    usage: Usage | None = None
    # Graph nodes: the node type, activity attempts of the last execution, and how many times
    # the node ran (a loop runs a node again).
    type: str | None = None
    attempts: int = 0
    runs: int = 0
    # Agent nodes: the child run's id, from the moment it starts.
    child_run_id: str | None = None


class RunEvent(BaseModel):
    """One line of the run's event log: a status, stage or node change."""

    at: datetime
    kind: str
    message: str


# The longest any run may wait for a person (a year and a day).
MAX_INPUT_TIMEOUT_S = 366 * 24 * 3600
# The longest answer any run may be configured to take.
MAX_INPUT_CHARS = 100_000
# Input ids (retries of one answer) a run remembers, and how long one may be.
MAX_INPUT_IDS = 50
MAX_INPUT_ID_CHARS = 100


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    # No decision within the run's input timeout (the run then fails), or the run was cancelled.
    EXPIRED = "expired"


class ApprovalRequest(BaseModel):
    """A tool call held for a person's decision (the tool's policy says `approval: always`)."""

    id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    reason: str | None = None
    decided_at: datetime | None = None
    # Which graph node asked (graph runs); None for the agent's context stage.
    node_id: str | None = None


class PendingToolCall(BaseModel):
    """A call of the current context round that waits until its round's approvals are decided
    (kept in the state so a run continued as new while waiting goes on waiting for them)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    approval_id: str | None = None


class Reflection(BaseModel):
    score: float
    critique: str


class RunStateBase(BaseModel):
    """What every kind of run has; `kind` says which model a `get_state` answer is."""

    run_id: str
    kind: str
    tenant: str | None = None
    status: RunStatus = RunStatus.PENDING
    question: str | None = None
    errors: list[str] = Field(default_factory=list)
    nodes: list[NodeState] = Field(default_factory=list)
    events: list[RunEvent] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    paused: bool = False
    waiting_since: datetime | None = None
    # Tool calls held for a person's decision, decided ones included (oldest first).
    approvals: list[ApprovalRequest] = Field(default_factory=list)
    continued_as_new: int = 0
    # Input ids the run took, with its status right after each (the newest MAX_INPUT_IDS).
    inputs_taken: dict[str, RunStatus] = Field(default_factory=dict)
    # Set when the run ends: the tail of its event stream, so that a closed run's events are
    # read from its history (its result or failure) instead of by a worker replaying it.
    final_stream: WorkflowStreamState | None = None
    created_at: datetime
    updated_at: datetime


class AgentState(RunStateBase):
    """The whole state of an agent run: what `get_state` returns and continue-as-new carries."""

    kind: str = "agent"
    query: str
    # The name of the agent definition the run was started with (None: runs from before
    # definitions, which behave as the `default` agent does).
    agent: str | None = None
    stage: Stage = Stage.INTENT
    intent: str | None = None
    answer: str | None = None
    contexts: list[str] = Field(default_factory=list)
    user_inputs: list[str] = Field(default_factory=list)
    tool_history: list[ToolRecord] = Field(default_factory=list)
    context_rounds: int = 0
    plan: list[str] = Field(default_factory=list)
    step_results: list[str] = Field(default_factory=list)
    reflection: Reflection | None = None
    critique: str | None = None
    reflection_retries: int = 0
    # The tools the run listed (recorded by the `list_tools` activity; None before that, and in
    # runs started before tools were listed).
    tools: ToolCatalog | None = None
    # The context round whose calls wait for approvals (empty otherwise).
    pending_tool_calls: list[PendingToolCall] = Field(default_factory=list)


class RunSettings(BaseModel):
    """The knobs a run starts with, from the settings (`config.Settings.run_settings`): they
    travel in the run's input because workflows never read settings, and a run keeps the values
    it started with. Bounded: a worker decodes what anyone may have started a run with."""

    input_timeout_s: float = Field(default=7 * 24 * 3600, gt=0, le=MAX_INPUT_TIMEOUT_S)
    max_input_chars: int = Field(default=8000, ge=1, le=MAX_INPUT_CHARS)
    max_context_rounds: int = Field(default=3, ge=0, le=20)
    reflection_threshold: float = Field(default=0.7, ge=0, le=1)
    max_reflection_retries: int = Field(default=1, ge=0, le=10)
    history_threshold: int = Field(default=10_000, ge=1, le=50_000)

    def run_settings(self) -> RunSettings:
        return RunSettings(**{name: getattr(self, name) for name in RunSettings.model_fields})


class AgentInput(RunSettings):
    """The input of an AgentWorkflow."""

    query: str
    # Which code started the run (`workflows/patches.py`): from 1, the starter set RunKind,
    # RunStatus and RunStage at start (the run upserts only values that change, and its last
    # stage with its end status), and the patches of baseline 1 apply with no marker. 0: runs
    # from before, and runs started by hand, which replay and run as they always did.
    # No upper bound here: a worker that meets a baseline newer than its own fails the workflow
    # task (`patches.check_baseline`), so Temporal retries it until an upgraded worker takes it.
    baseline: int = Field(default=0, ge=0, le=1000)
    # The agent definition, pinned whole when the run starts (its limits are already folded
    # into the settings above). None: a run from before definitions (today's `default`).
    agent: AgentDefinition | None = None
    # Who started the run (API-key tenant); None when the gateway runs without keys.
    tenant: str | None = None
    # Set only by continue-as-new: the state and event stream the next run resumes from.
    state: AgentState | None = None
    stream: WorkflowStreamState | None = None


class UserInput(BaseModel):
    """Payload of the `submit_input` update and the `provide_input` signal."""

    text: str
    # Graph runs: which waiting node the text answers (optional when exactly one waits).
    node_id: str | None = None
    # Names one input across retries: a signal with an id the run already took is ignored.
    input_id: str | None = Field(default=None, max_length=MAX_INPUT_ID_CHARS)


# The longest reason a person may give with an approval decision.
MAX_REASON_CHARS = 2000


class ApprovalDecision(BaseModel):
    """Payload of the `decide` update and the `decide_approval` signal."""

    approval_id: str
    approve: bool
    reason: str = ""


class ApprovalDecided(BaseModel):
    approval_id: str
    decision: ApprovalStatus
    status: RunStatus


class InputAccepted(BaseModel):
    accepted: bool = True
    status: RunStatus


class InputCheck(BaseModel):
    """The `check_input` query's answer: whether the run took this input already (and its
    status then), else why it would refuse it now (`problem_type` InvalidState or
    InvalidInput, the payload's field at fault), or nothing when it would take it."""

    taken: bool = False
    status: RunStatus
    problem_type: str | None = None
    problem: str | None = None
    problem_field: str = "text"


class OpenQuestion(BaseModel):
    """A question a graph node waits on; answered by its node id."""

    node_id: str
    question: str
    asked_at: datetime
    # When the node stops waiting (and fails) without an answer.
    deadline: datetime


class GraphState(RunStateBase):
    """The state of a graph run: node statuses, the variables nodes read and write, outputs."""

    kind: str = "graph"
    graph: str
    version: str
    # `input`, `vars` and each node's output {value, metadata} under its id.
    variables: dict[str, Any] = Field(default_factory=dict)
    # The outputs of the nodes without outgoing edges that ran, by node id.
    outputs: dict[str, Any] = Field(default_factory=dict)
    # Every open question, oldest first; `question` and `waiting_node` repeat the first.
    questions: list[OpenQuestion] = Field(default_factory=list)
    waiting_node: str | None = None
    steps: int = 0
    # Which nodes are ready, running or done, and which edges were taken (continue-as-new
    # carries it).
    scheduler: SchedulerState | None = None
    # What the run's tool nodes may call and which need a person's approval (listed once, by
    # the first tool node; continue-as-new carries it).
    tools: ToolCatalog | None = None


class GraphInput(RunSettings):
    """The input of a GraphWorkflow; it pins the full, validated spec."""

    spec: GraphSpec
    input: dict[str, Any] = Field(default_factory=dict)
    # Which code started the run (`workflows/patches.py`): from 1, the starter set RunKind,
    # RunStatus and RunStage at start (the run upserts only values that change, and its last
    # stage with its end status), and the patches of baseline 1 apply with no marker. 0: runs
    # from before, and runs started by hand, which replay and run as they always did.
    # No upper bound here: a worker that meets a baseline newer than its own fails the workflow
    # task (`patches.check_baseline`), so Temporal retries it until an upgraded worker takes it.
    baseline: int = Field(default=0, ge=0, le=1000)
    tenant: str | None = None
    # The bounds the run was started with; the worker enforces them (they cannot exceed the
    # ceilings: an input that says otherwise does not decode, and the run fails with why).
    limits: Limits = Field(default_factory=Limits)
    # The catalog agents its `agent` nodes name, pinned whole when the run starts.
    agents: dict[str, AgentDefinition] = Field(default_factory=dict, max_length=100)
    # Step-through debugging: the run pauses before these nodes (or before every node: "*").
    breakpoints: list[str] | Literal["*"] = Field(default_factory=list, max_length=1000)
    # Set only by continue-as-new: the state and event stream the next run resumes from.
    state: GraphState | None = None
    stream: WorkflowStreamState | None = None

    def new_state(self, run_id: str, now: datetime) -> GraphState:
        spec = self.spec
        return GraphState(
            run_id=run_id,
            tenant=self.tenant,
            graph=spec.name,
            version=spec.version,
            variables={"input": self.input, "vars": {}},
            nodes=[NodeState(id=n.id, name=n.id, type=n.type, created_at=now) for n in spec.nodes],
            created_at=now,
            updated_at=now,
        )
