"""/api/v1/runs: start runs, list them, read their state, and control them."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from app.agent_catalog import agent_run_settings
from app.auth import Tenant
from app.deps import AppSettings, Secret, TemporalClient
from app.errors import (
    RETRY_AFTER_S,
    ApprovalNotFound,
    IdempotencyConflict,
    InvalidAgent,
    InvalidGraph,
    InvalidInput,
    InvalidState,
    TemporalUnavailable,
    translate_rpc_error,
)
from app.run_access import (
    RUN_WORKFLOW_TYPES,
    child_questions,
    closed_or,
    describe_owned,
    load_run,
    never_ran,
    patient_query,
    require_active,
    task_failure,
)
from app.schemas import (
    ApprovalAnswer,
    ApprovalBody,
    ControlAccepted,
    ErrorBody,
    InputBody,
    QuestionView,
    RunCreate,
    RunCreated,
    RunList,
    RunSummary,
    RunView,
)
from app.secret import mac, open_token, sign_token
from app.yaml_bodies import yaml_body
from config import Settings
from shared import RUN_AGENT, RUN_KIND, RUN_STAGE, RUN_STATUS, TENANT
from workflows.agent import AgentWorkflow
from workflows.agent_spec import AGENT_NAME_PATTERN, DEFAULT_AGENT, AgentDefinition, validate_agent
from workflows.graph import GraphWorkflow
from workflows.graph_spec import GraphSpec, input_problems, validate
from workflows.limits import json_problems, text_problem
from workflows.patches import CURRENT_BASELINE
from workflows.state import (
    MAX_INPUT_CHARS,
    TERMINAL_STATUSES,
    AgentInput,
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    GraphInput,
    GraphState,
    InputCheck,
    RunStatus,
    Stage,
    UserInput,
)

# How often the gateway looks whether a run took an input (or a decision) it was sent.
INPUT_POLL_S = 0.05
INPUT_POLL_MAX_S = 1.0
T = TypeVar("T")

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

RunId = Annotated[str, Path(min_length=1, max_length=200, description="The run's id")]

ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: {"model": ErrorBody} for code in (401, 404, 409, 413, 422)},
    503: {
        "model": ErrorBody,
        "description": "Temporal (or a worker) is unavailable or did not answer in time",
        "headers": {
            "Retry-After": {
                "description": f"Seconds to wait before retrying ({RETRY_AFTER_S})",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    },
}

REQUEST_HASH_MEMO = "request_sha256"


def agent_input(
    query: str, settings: Settings, tenant: str | None, agent: AgentDefinition
) -> AgentInput:
    """The run pins the whole definition (editing its file never changes a run in flight), its
    limits folded into the run's knobs."""
    knobs = agent_run_settings(settings, agent)
    return AgentInput(
        query=query,
        tenant=tenant,
        agent=agent,
        baseline=CURRENT_BASELINE,  # `_initial_search_attributes`
        **knobs.model_dump(),
    )


def _agent(agent: str | dict[str, Any] | None, request: Request) -> AgentDefinition:
    """The catalog agent of that name (`default` when unset), or the inline definition once
    validated (all problems at once, 422, before anything starts)."""
    catalog: dict[str, AgentDefinition] = request.app.state.agents
    if agent is None or isinstance(agent, str):
        name = agent or DEFAULT_AGENT
        if name not in catalog:
            raise InvalidInput(
                f"no agent named {name!r} in the catalog; known: {', '.join(sorted(catalog))}",
                [{"path": "body.agent", "message": "unknown agent"}],
            )
        return catalog[name]
    checked = validate_agent(agent, request.app.state.tool_names, path="body.agent")
    if not checked.ok or checked.definition is None:
        raise InvalidAgent(checked.problems)
    return checked.definition


def _pinned_agents(spec: GraphSpec, request: Request) -> dict[str, AgentDefinition]:
    """The catalog agents the graph's `agent` nodes name (the default one for a node that names
    none), pinned in the run's input like the spec itself."""
    catalog: dict[str, AgentDefinition] = request.app.state.agents
    names = {
        getattr(node.config, "agent", None) or DEFAULT_AGENT
        for node in spec.nodes
        if node.kind == "agent"
    }
    return {name: catalog[name] for name in sorted(names) if name in catalog}


def check_text(text: str, max_chars: int, path: str) -> None:
    """422 for a text no run should get: blank (only whitespace or NULs), not valid Unicode
    (a lone surrogate), or too long."""
    problem = text_problem(text, max_chars)
    if problem is not None:
        name = path.rpartition(".")[2]
        raise InvalidInput(f"{name}: {problem}", [{"path": path, "message": problem}])


def _graph_spec(
    graph: str | dict[str, Any] | None, request: Request, settings: Settings
) -> GraphSpec:
    """The catalog graph of that name, or the inline definition once validated (all problems
    at once, 422, before anything starts)."""
    if isinstance(graph, str):
        catalog: dict[str, GraphSpec] = request.app.state.graphs
        if graph not in catalog:
            raise InvalidInput(
                f"no graph named {graph!r} in the catalog; known: {', '.join(sorted(catalog))}",
                [{"path": "body.graph"}],
            )
        return catalog[graph]
    checked = validate(
        graph, request.app.state.tool_names, settings.limits(), agents=request.app.state.agents
    )
    if not checked.ok or checked.spec is None:
        raise InvalidGraph(checked.problems)
    return checked.spec


def _check_graph_start(spec: GraphSpec, body: RunCreate) -> None:
    """422 for an input the graph's `input_schema` refuses, or breakpoints on unknown nodes."""
    problems = input_problems(spec.input_schema, body.input or {}, path="body.input")
    if problems:
        raise InvalidInput(
            f"the input does not match the graph's input_schema ({len(problems)} problem(s))",
            [{"path": path, "message": message} for path, message in problems],
        )
    if isinstance(body.breakpoints, list):
        ids = {node.id for node in spec.nodes}
        unknown = [
            {"path": f"body.breakpoints[{i}]", "message": f"{node_id!r} is not a node of the graph"}
            for i, node_id in enumerate(body.breakpoints)
            if node_id not in ids
        ]
        if unknown:
            raise InvalidInput("breakpoints name nodes the graph does not have", unknown)


def _initial_search_attributes(
    kind: str, tenant: str | None, agent: str | None = None
) -> TypedSearchAttributes:
    # Set at start so that a new run is listed (and filtered) before its first workflow task.
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RUN_STATUS, RunStatus.PENDING.value),
        SearchAttributePair(RUN_KIND, kind),
    ]
    if kind == "agent":
        pairs.append(SearchAttributePair(RUN_STAGE, Stage.INTENT.value))
    if agent is not None:
        pairs.append(SearchAttributePair(RUN_AGENT, agent))
    if tenant is not None:
        pairs.append(SearchAttributePair(TENANT, tenant))
    return TypedSearchAttributes(pairs)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RunCreated,
    responses={**ERRORS, 200: {"model": RunCreated, "description": "Idempotent replay"}},
    summary="Start an agent run (`query`, optional `agent`) or a graph run (`graph` + `input`)",
    openapi_extra=yaml_body("RunCreate"),
)
async def create_run(
    body: RunCreate,
    request: Request,
    response: Response,
    client: TemporalClient,
    settings: AppSettings,
    tenant: Tenant,
    secret: Secret,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="The same key returns the same run (200) instead of starting another.",
        ),
    ] = None,
) -> RunCreated:
    workflow_run: Any
    workflow_input: Any
    # Everything is checked before anything starts (and the worker checks it again).
    limits = settings.limits()
    agent_name: str | None = None
    if body.query is not None:
        check_text(body.query, settings.max_query_chars, "body.query")
        kind, workflow_run = "agent", AgentWorkflow.run
        agent = _agent(body.agent, request)
        agent_name = agent.name
        workflow_input = agent_input(body.query, settings, tenant, agent)
    else:
        problems = json_problems(
            body.input or {},
            max_depth=limits.max_input_depth,
            max_bytes=limits.max_input_bytes,
            path="body.input",
        )
        if problems:
            raise InvalidInput(
                f"the input has {len(problems)} problem(s)",
                [{"path": path, "message": message} for path, message in problems],
            )
        kind, workflow_run = "graph", GraphWorkflow.run
        spec = _graph_spec(body.graph, request, settings)
        _check_graph_start(spec, body)
        workflow_input = GraphInput(
            spec=spec,
            input=body.input or {},
            tenant=tenant,
            limits=limits,
            breakpoints=body.breakpoints or [],
            agents=_pinned_agents(spec, request),
            baseline=CURRENT_BASELINE,  # `_initial_search_attributes`
            **settings.run_settings().model_dump(),
        )
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    if idempotency_key is None:
        run_id = f"run-{uuid.uuid4().hex}"
    else:
        # The id is derived from (tenant, key): Temporal itself then refuses a second start.
        # An HMAC under the gateway's secret, so no one else can compute another tenant's ids.
        run_id = f"run-{mac(secret, 'run', tenant or '', idempotency_key)[:32]}"
    try:
        await client.start_workflow(
            workflow_run,
            workflow_input,
            id=run_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=_initial_search_attributes(kind, tenant, agent_name),
            memo={REQUEST_HASH_MEMO: request_hash},
            task_timeout=timedelta(seconds=settings.workflow_task_timeout_s),
            rpc_timeout=timedelta(seconds=settings.query_timeout_s),
            # Tenants share task queues fairly when tasks back up (a server with fairness on);
            # the run's activities and children inherit the key.
            priority=Priority(fairness_key=tenant) if tenant else Priority.default,
        )
    except WorkflowAlreadyStartedError:
        if idempotency_key is None:
            raise TemporalUnavailable("run id collision; retry the request") from None
        return await _existing_run(client, run_id, request_hash, settings, tenant, response)
    except (RPCError, RPCTimeoutOrCancelledError, RuntimeError) as exc:
        raise translate_rpc_error(exc) from None
    return RunCreated(run_id=run_id, status=RunStatus.PENDING)


async def _existing_run(
    client: TemporalClient,
    run_id: str,
    request_hash: str,
    settings: Settings,
    tenant: str | None,
    response: Response,
) -> RunCreated:
    description = await describe_owned(client, run_id, settings, tenant)
    memo = await description.memo()
    if memo.get(REQUEST_HASH_MEMO) != request_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body",
            {"run_id": run_id},
        )
    read = await load_run(client, run_id, settings, tenant)
    response.status_code = status.HTTP_200_OK
    return RunCreated(run_id=run_id, status=read.status)


@router.get(
    "",
    response_model=RunList,
    responses=ERRORS,
    summary="List runs (filter by status, stage, kind, agent; paginated)",
)
async def list_runs(
    client: TemporalClient,
    settings: AppSettings,
    tenant: Tenant,
    secret: Secret,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    stage: Stage | None = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    agent: Annotated[
        str | None,
        Query(
            pattern=AGENT_NAME_PATTERN,
            description="Agent runs of this agent only (search attribute `RunAgent`).",
        ),
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[
        str | None,
        Query(max_length=4000, description="`next_page_token` of the previous page (signed)."),
    ] = None,
) -> RunList:
    types = ", ".join(f'"{t}"' for t in RUN_WORKFLOW_TYPES)
    # This deployment's runs: its task queue. Another deployment sharing the namespace (or a
    # test's worker long gone) has runs no worker of ours would answer for.
    queue = settings.task_queue.replace("\\", "\\\\").replace('"', '\\"')
    clauses = [f"WorkflowType IN ({types})", f'TaskQueue = "{queue}"']
    # Values come from enums and a strict pattern, so they are safe to quote into the query.
    if status_ is not None:
        clauses.append(_status_clause(status_))
    if stage is not None:
        clauses.append(f'RunStage = "{stage.value}"')
    if kind is not None:
        clauses.append(f'RunKind = "{kind}"')
    if agent is not None:
        clauses.append(f'RunAgent = "{agent}"')
    if tenant is not None:
        clauses.append(f'Tenant = "{_quote(tenant)}"')
    token = None
    if page_token is not None:
        token = open_token(secret, page_token)
        if token is None:  # forged, tampered with, or from a gateway with another secret
            raise InvalidInput("page_token is not valid", [{"path": "query.page_token"}])
    listing = client.list_workflows(
        " AND ".join(clauses),
        page_size=page_size,
        next_page_token=token,
        rpc_timeout=timedelta(seconds=settings.query_timeout_s),
    )
    try:
        await listing.fetch_next_page()
    except RPCError as exc:
        if exc.status.name == "INVALID_ARGUMENT" and token is not None:
            raise InvalidInput("page_token is not valid", [{"path": "query.page_token"}]) from None
        raise translate_rpc_error(exc) from None
    except (RPCTimeoutOrCancelledError, RuntimeError) as exc:
        raise translate_rpc_error(exc) from None
    runs = [RunSummary.from_execution(execution) for execution in listing.current_page or []]
    # Temporal's SQL visibility (the dev server) cannot ORDER BY: it returns open runs first,
    # then closed ones by close time. Within a page, newest first.
    runs.sort(key=lambda run: run.created_at, reverse=True)
    next_token = listing.next_page_token
    return RunList(
        runs=runs,
        next_page_token=sign_token(secret, next_token) if next_token else None,
    )


# Runs Temporal itself ended (terminated, timed out) keep the last status they recorded; they are
# listed (and read) by how they ended.
_ENDED_BY_TEMPORAL = {
    RunStatus.FAILED: ("Failed", "Terminated", "TimedOut"),
    RunStatus.CANCELLED: ("Canceled",),
}


def _status_clause(status: RunStatus) -> str:
    if status in _ENDED_BY_TEMPORAL:
        closed = ", ".join(f'"{name}"' for name in _ENDED_BY_TEMPORAL[status])
        return f'(RunStatus = "{status.value}" OR ExecutionStatus IN ({closed}))'
    if status in TERMINAL_STATUSES:
        return f'RunStatus = "{status.value}"'
    return f'RunStatus = "{status.value}" AND ExecutionStatus = "Running"'


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@router.get("/{run_id}", response_model=RunView, responses=ERRORS, summary="Read a run's state")
async def get_run(
    run_id: RunId, client: TemporalClient, settings: AppSettings, tenant: Tenant
) -> RunView:
    read = await load_run(client, run_id, settings, tenant)
    view = RunView.from_read(read)
    if isinstance(read.state, GraphState) and read.status not in TERMINAL_STATUSES:
        # A question an agent node's child asks is the graph run's question too.
        for node_id, child_id, child in await child_questions(client, read.state, settings):
            asked = QuestionView(
                node_id=node_id,
                question=child.question or "",
                asked_at=child.waiting_since or child.updated_at,
                run_id=child_id,
            )
            view.questions.append(asked)
    return view


async def _answerable(
    client: TemporalClient, run_id: str, settings: Settings, tenant: str | None, what: str
) -> WorkflowExecutionDescription:
    """The run's description; 409 when its workflow task keeps failing (it takes nothing)."""
    description = await describe_owned(client, run_id, settings, tenant)
    failure = await task_failure(client, description, settings)
    if failure is not None:
        raise InvalidState(
            f"the run is stuck (its workflow task keeps failing) and cannot take {what}",
            {"errors": [failure]},
        )
    return description


async def _input_target(
    client: TemporalClient,
    run_id: str,
    node_id: str | None,
    settings: Settings,
    tenant: str | None,
) -> tuple[str, str | None]:
    """Where an answer to a graph run goes: the run itself (a waiting node), or the child run
    of an agent node (named, or the only child that waits): (run id, node id)."""
    read = await load_run(client, run_id, settings, tenant)
    state = read.state
    if not isinstance(state, GraphState) or (
        node_id is not None and any(q.node_id == node_id for q in state.questions)
    ):
        return run_id, node_id
    if node_id is None and state.questions:
        return run_id, None  # the run's own questions first; its validator picks
    children = await child_questions(client, state, settings)
    chosen = [c for c in children if node_id is None or c[0] == node_id]
    if len(chosen) == 1:
        return chosen[0][1], None
    return run_id, node_id  # the run's validator says what is wrong


@router.post(
    "/{run_id}/input",
    response_model=ControlAccepted,
    responses={
        **ERRORS,
        202: {
            "model": ControlAccepted,
            "description": "Sent, not yet applied: the run had not taken the answer when the "
            "reply was due (`pending: true`); it is kept and applied once",
        },
    },
    summary="Answer a run that waits for input",
)
async def submit_input(
    run_id: RunId,
    body: InputBody,
    response: Response,
    client: TemporalClient,
    settings: AppSettings,
    tenant: Tenant,
    secret: Secret,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description=(
                "Retrying with the same key (say after a 503) returns what the first attempt "
                "did instead of a 409: the input is applied once."
            ),
        ),
    ] = None,
) -> ControlAccepted:
    # The run's own limit (pinned when it started) is its `check_input` query's to check.
    check_text(body.text, MAX_INPUT_CHARS, "body.text")
    description = await _answerable(client, run_id, settings, tenant, "input")
    if await never_ran(client, description, settings):
        raise InvalidState("the run is pending, not waiting for input")
    # The input goes as a signal, checked first with the run's read-only `check_input` query,
    # not as the `submit_input` update: a worker that answered a query while another ran the
    # update's workflow task cannot replay the update later, and hangs on that run
    # (docs/durability.md). A signal is in the history, so any worker replays it.
    # The input id names this answer across retries: derived from (tenant, run, key) with an
    # Idempotency-Key, so a retry finds its first attempt taken and returns what it returned.
    input_id = f"input-{uuid.uuid4().hex}"
    if idempotency_key is not None:
        input_id = f"input-{mac(secret, 'input', tenant or '', run_id, idempotency_key)[:32]}"
    payload = UserInput(text=body.text, node_id=body.node_id, input_id=input_id)
    handle = client.get_workflow_handle(run_id)
    timeout = timedelta(seconds=settings.query_timeout_s)
    check = await _check_input(client, handle, payload, settings, tenant, run_id)
    if check.problem_type is not None and description.workflow_type == "GraphWorkflow":
        # Not a question of the graph run itself: perhaps one its agent node's child asks.
        target, node_id = await _input_target(client, run_id, body.node_id, settings, tenant)
        if target != run_id:
            payload = payload.model_copy(update={"node_id": node_id})
            handle = client.get_workflow_handle(target)
            check = await _check_input(client, handle, payload, settings, tenant, run_id)
    if not check.taken:
        _refuse(check)
        try:
            await handle.signal(AgentWorkflow.provide_input, payload, rpc_timeout=timeout)
        except (RPCError, RPCTimeoutOrCancelledError, RuntimeError) as exc:
            raise await closed_or(exc, client, run_id, settings, tenant, "input") from None
        taken = await _until_taken(client, handle, payload, settings, tenant, run_id)
        if taken is None:
            # Sent and durable, not applied yet: 202, not a 503 that would have the client
            # answer again. Reading the run shows it applied; a retry with the same
            # Idempotency-Key is applied once.
            response.status_code = status.HTTP_202_ACCEPTED
            return ControlAccepted(run_id=run_id, status=check.status, pending=True)
        check = taken
    return ControlAccepted(run_id=run_id, status=check.status)


async def _check_input(
    client: TemporalClient,
    handle: WorkflowHandle[Any, Any],
    payload: UserInput,
    settings: Settings,
    tenant: str | None,
    run_id: str,
    timeout_s: float | None = None,
) -> InputCheck:
    try:
        check: InputCheck = await patient_query(
            handle, AgentWorkflow.check_input, payload, InputCheck, settings, timeout_s
        )
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
        raise TemporalUnavailable(
            "the run could not check the input; retry shortly", {"reason": str(exc)}
        ) from None
    except (RPCError, RPCTimeoutOrCancelledError, RuntimeError) as exc:
        raise await closed_or(exc, client, run_id, settings, tenant, "input") from None
    return check


def _refuse(check: InputCheck) -> None:
    if check.problem_type == "InvalidInput":
        problem = {"path": f"body.{check.problem_field}", "message": check.problem}
        raise InvalidInput(check.problem or "invalid input", [problem])
    if check.problem_type is not None:
        raise InvalidState(check.problem or f"the run is {check.status.value}")


async def _until_taken(
    client: TemporalClient,
    handle: WorkflowHandle[Any, Any],
    payload: UserInput,
    settings: Settings,
    tenant: str | None,
    run_id: str,
) -> InputCheck | None:
    """The run's answer to the signalled input, once its workflow task has run: taken, or
    refused (another input came first: 409). Not within the query timeout (a busy worker): None,
    and the input, durable in the run's history, is applied when the run gets to it."""
    deadline = time.monotonic() + settings.query_timeout_s

    async def read() -> InputCheck | None:
        left = max(deadline - time.monotonic(), 0.5)  # one budget for every poll
        try:
            return await _check_input(client, handle, payload, settings, tenant, run_id, left)
        except TemporalUnavailable:
            return None  # a busy worker: the signal is sent; ask again, or answer 202

    check = await _once_settled(
        read,
        lambda check: check is not None and (check.taken or check.problem_type is not None),
        settings,
    )
    if check is not None and not check.taken:
        _refuse(check)
    return check


async def _once_settled(
    read: Callable[[], Awaitable[T]], settled: Callable[[T], bool], settings: Settings
) -> T | None:
    """What `read` returns once `settled` holds (the run's workflow task has taken a signal);
    None past the query timeout. Read again after INPUT_POLL_S, doubling up to
    INPUT_POLL_MAX_S: a quick run answers within a poll or two, and a thousand answers sent at
    once do not flood their busy worker with queries."""
    deadline = time.monotonic() + settings.query_timeout_s
    delay = INPUT_POLL_S
    while True:
        value = await read()
        if settled(value):
            return value
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 2, INPUT_POLL_MAX_S)


ApprovalId = Annotated[
    str, Path(min_length=1, max_length=200, description="The approval's id (in `approvals`)")
]


@router.post(
    "/{run_id}/approvals/{approval_id}",
    response_model=ApprovalAnswer,
    responses=ERRORS,
    summary="Approve or deny a tool call the run holds for a person",
)
async def decide_approval(
    run_id: RunId,
    approval_id: ApprovalId,
    body: ApprovalBody,
    client: TemporalClient,
    settings: AppSettings,
    tenant: Tenant,
) -> ApprovalAnswer:
    if body.reason:
        check_text(body.reason, len(body.reason) + 1, "body.reason")
    description = await _answerable(client, run_id, settings, tenant, "a decision")
    if await never_ran(client, description, settings):
        raise ApprovalNotFound(f"the run has no approval {approval_id!r}", {"run_id": run_id})
    # As for input (docs/durability.md): checked against the run's state, then sent as the
    # `decide_approval` signal, which any worker replays, never as the `submit_approval` update.
    request = await _approval_request(client, run_id, approval_id, settings, tenant)
    if request.status is not ApprovalStatus.PENDING:
        raise InvalidState(f"approval {approval_id} is already {request.status.value}")
    decision = ApprovalDecision(approval_id=approval_id, approve=body.approve, reason=body.reason)
    await _signal(client, run_id, settings, tenant, AgentWorkflow.decide_approval, decision)
    wanted = ApprovalStatus.APPROVED if body.approve else ApprovalStatus.DENIED
    settled = await _once_settled(
        lambda: _approval_request(client, run_id, approval_id, settings, tenant),
        lambda request: request.status is not ApprovalStatus.PENDING,
        settings,
    )
    if settled is None:
        raise TemporalUnavailable(
            "the decision was sent but the run has not taken it yet; read the run's "
            "`approvals` before deciding again"
        )
    request = settled
    if request.status is not wanted:  # another decision (or the wait's end) came first
        raise InvalidState(f"approval {approval_id} is already {request.status.value}")
    read = await load_run(client, run_id, settings, tenant)
    return ApprovalAnswer(
        run_id=run_id, approval_id=approval_id, decision=request.status, status=read.status
    )


async def _approval_request(
    client: TemporalClient, run_id: str, approval_id: str, settings: Settings, tenant: str | None
) -> ApprovalRequest:
    read = await load_run(client, run_id, settings, tenant)
    approvals = read.state.approvals if read.state is not None else []
    found = next((a for a in approvals if a.id == approval_id), None)
    if found is None:
        raise ApprovalNotFound(f"the run has no approval {approval_id!r}", {"run_id": run_id})
    return found


# Pause, resume and step: the same request, one table.
_CONTROLS = {
    # action: (signal, needs the run paused, summary)
    "pause": (AgentWorkflow.pause, False, "Hold a run before its next activity (or node)"),
    "resume": (AgentWorkflow.resume, True, "Let a paused run go on"),
    "step": (
        AgentWorkflow.step,
        True,
        "Let a paused run start exactly one more node (or activity), then hold again",
    ),
}


def _control_route(action: str) -> None:
    signal, needs_paused, summary = _CONTROLS[action]

    async def control(
        run_id: RunId, client: TemporalClient, settings: AppSettings, tenant: Tenant
    ) -> ControlAccepted:
        read = await load_run(client, run_id, settings, tenant)
        require_active(read, {"pause": "paused", "resume": "resumed", "step": "stepped"}[action])
        if read.paused != needs_paused:
            state = "is not paused" if needs_paused else "is already paused"
            raise InvalidState(f"the run {state} (status {read.status})")
        await _signal(client, run_id, settings, tenant, signal)
        return ControlAccepted(run_id=run_id, status=read.status)

    router.add_api_route(
        f"/{{run_id}}/{action}",
        control,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ControlAccepted,
        responses=ERRORS,
        summary=summary,
        name=f"{action}_run",
    )


for _action in _CONTROLS:
    _control_route(_action)


@router.post(
    "/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ControlAccepted,
    responses=ERRORS,
    summary="Cancel a run (Temporal cancellation)",
)
async def cancel_run(
    run_id: RunId, client: TemporalClient, settings: AppSettings, tenant: Tenant
) -> ControlAccepted:
    require_active(await load_run(client, run_id, settings, tenant), "cancelled")
    try:
        await client.get_workflow_handle(run_id).cancel(
            rpc_timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except (RPCError, RuntimeError) as exc:
        raise await closed_or(exc, client, run_id, settings, tenant, "cancelled") from None
    return ControlAccepted(run_id=run_id, status="cancelling")


async def _signal(
    client: TemporalClient,
    run_id: str,
    settings: Settings,
    tenant: str | None,
    signal: Any,
    arg: Any = None,
) -> None:
    args = [] if arg is None else [arg]
    try:
        await client.get_workflow_handle(run_id).signal(
            signal, args=args, rpc_timeout=timedelta(seconds=settings.query_timeout_s)
        )
    except (RPCError, RuntimeError) as exc:
        raise await closed_or(exc, client, run_id, settings, tenant, "signalled") from None
