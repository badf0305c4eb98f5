"""GraphWorkflow: interprets a validated GraphSpec (pinned in the run's input).

Semantics:
- The entry node runs first. When a node finishes, its outgoing edges are resolved: an edge is
  *taken* when its `on` matches the outcome (success / failure / always) and its `when` holds.
- A node runs once every forward edge into it is resolved and at least one was taken (so
  branches that both hold run in parallel and the graph waits for them where they join). A node
  whose incoming edges were all left untaken is `skipped`, and so is what only it leads to.
- A taken back edge (one that closes a cycle) runs its target again, and with it the part of the
  graph after it; `max_steps` bounds the node executions of a run.
- A node that fails for good fails the run, unless one of its edges has `on: failure|always`.
- The run completes when nothing runs and nothing is ready; `outputs` holds what the nodes
  without outgoing edges produced.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

with workflow.unsafe.imports_passed_through():
    from activities.context import ContextActivities
    from activities.graph_nodes import GraphNodeActivities, graph_yield
    from activities.models import CompleteInput, ToolCallInput
    from workflows import timeouts
    from workflows.expressions import ExpressionError, evaluate, render
    from workflows.graph_spec import GraphPlan, GraphSpec, NodeSpec, build_plan, validate
    from workflows.limits import (
        IN_WORKFLOW_READ_BYTES_PER_ACTIVATION,
        IN_WORKFLOW_STEPS_PER_ACTIVATION,
        MATCHES_COST_FACTOR,
        MATCHES_READ_BYTES,
        json_problems,
        read_weight,
        referenced_names,
        template_expressions,
    )
    from workflows.run_control import (
        RUN_KIND,
        RunControl,
        RunFailure,
        decode_input,
        failure_message,
    )
    from workflows.state import (
        EVENTS_TOPIC,
        AgentInput,
        AgentState,
        GraphInput,
        GraphState,
        NodeState,
        NodeStatus,
        RunStatus,
        StreamEvent,
        Usage,
    )

PENDING, TAKEN, NOT_TAKEN = "pending", "taken", "not_taken"
# Node kinds evaluated by the workflow itself, between two Temporal commands.
IN_WORKFLOW_TYPES = frozenset({"condition", "transform"})
# workflow.patched() ids (docs/versioning.md): runs recorded before these guards replay as they ran.
YIELD_BETWEEN_INLINE_NODES = "yield-between-inline-nodes"
BOUND_PARALLEL_NODES = "bound-parallel-nodes"
# Limits checked by the worker (input, expressions, node outputs). Runs started before it replay
# without them: a stricter check must never change what an old run did.
ENFORCE_LIMITS = "enforce-limits-in-worker"
# Past this many history events a graph run fails with a reason (Temporal's own hard limit is
# 51,200 events, where it terminates the run).
MAX_HISTORY_EVENTS = 40_000
# Items of the run's event stream kept in memory (older ones are dropped; a reconnecting client
# asking for one is moved to the oldest kept).
MAX_STREAM_ITEMS = 2000
# A graph whose input cannot be read still needs a spec to show; this one runs nothing.
_UNREADABLE = GraphSpec(name="unreadable", entry="none", nodes=[])


class NodeFailed(Exception):
    """A node failed for good (after its retries); the message is the node's error."""


@workflow.defn
class GraphWorkflow(RunControl):
    _state: GraphState

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        now = workflow.now()
        # The worker never trusts its input: decode it and check it against its limits here, and
        # fail the run once (in `run`) with what is wrong, rather than its workflow task forever.
        inp, self._unrunnable = decode_input(raw, GraphInput)
        self._enforce = workflow.patched(ENFORCE_LIMITS)
        if inp is None:
            inp = GraphInput(spec=_UNREADABLE)
        elif self._enforce:
            self._unrunnable = _input_problem(inp)
        if self._unrunnable is not None:  # keep what can be shown: the name, the tenant
            unreadable = _UNREADABLE.model_copy(update={"name": inp.spec.name})
            inp = GraphInput(spec=unreadable, tenant=inp.tenant)
        spec = inp.spec
        self._inp = inp
        self._spec = spec
        self._limits = inp.limits
        # What expressions are checked against (None: as before limits, for old runs).
        self._expression_limits = inp.limits if self._enforce else None
        self._plan: GraphPlan = (
            build_plan(spec)
            if spec.nodes
            else GraphPlan([], {}, {}, frozenset(), frozenset(), has_cycle=False)
        )
        self._by_id: dict[str, NodeSpec] = {n.id: n for n in spec.nodes}
        self._state = GraphState(
            run_id=workflow.info().workflow_id,
            tenant=inp.tenant,
            graph=spec.name,
            version=spec.version,
            variables={"input": inp.input, "vars": {}},
            nodes=[NodeState(id=n.id, name=n.id, type=n.type, created_at=now) for n in spec.nodes],
            created_at=now,
            updated_at=now,
        )
        self._node_state = {n.id: n for n in self._state.nodes}
        self._max_input_chars = inp.max_input_chars
        self._edges = [PENDING] * len(spec.edges)
        self._ready: list[str] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._finished: list[tuple[str, str | None]] = []  # (node id, error or None)
        self._input_text: str | None = None
        # Bytes of each node's output in `variables` (their sum is bounded by the limits).
        self._output_bytes: dict[str, int] = {}
        # In-workflow nodes run in this activation, and the bytes of variables they read.
        self._inline_steps = 0
        self._inline_read = 0
        self._inline_since = 0  # history length when the count began
        self._yielding: asyncio.Task[None] | None = None
        # What reading each value costs (`read_weight`), by name: `input`, node ids, `vars`.
        self._read_weights: dict[str, int] = {}
        if self._enforce:
            self._read_weights["input"] = read_weight(inp.input)[1]
        self._stream = WorkflowStream(None)
        self._events = self._stream.topic(EVENTS_TOPIC, type=StreamEvent)

    @workflow.query
    def get_state(self) -> GraphState:
        return self._state

    def _result_fields(self) -> dict[str, Any]:
        return {"outputs": self._state.outputs}

    def _on_input(self, text: str) -> None:
        self._input_text = text

    # ---- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: RawValue) -> GraphState:
        workflow.upsert_search_attributes([RUN_KIND.value_set("graph")])
        if self._unrunnable is not None:
            await self._fail_unrunnable(self._unrunnable)
        self._update_status(run=RunStatus.RUNNING, message=f"graph {self._spec.name} started")
        self._ready.append(self._spec.entry)
        try:
            await self._drive()
        except asyncio.CancelledError:
            await self._stop_running()
            for node in self._state.nodes:
                if node.status in (NodeStatus.CREATED, NodeStatus.INITIALIZED):
                    self._update_status(node=node, node_status=NodeStatus.CANCELLED)
            self._update_status(run=RunStatus.CANCELLED, message="cancelled")
            await self._finish_stream({"outputs": self._state.outputs})
            raise
        except RunFailure as exc:
            await self._stop_running()
            await self._fail(str(exc))
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError):
                raise  # a deploy that breaks replay: the task fails until the code is fixed
            # Anything else (a bug) fails the run with the error instead of its workflow task,
            # which Temporal would retry forever: no run hangs.
            await self._stop_running()
            await self._fail(f"internal error: {type(exc).__name__}: {str(exc)[:300]}")
        for node in self._state.nodes:
            if node.status is NodeStatus.CREATED:
                self._update_status(node=node, node_status=NodeStatus.SKIPPED)
        self._state.outputs = {
            node_id: self._state.variables[node_id]
            for node_id in self._plan.node_ids
            if node_id in self._plan.sinks and node_id in self._state.variables
        }
        self._update_status(run=RunStatus.COMPLETED, message="graph finished")
        await self._finish_stream({"outputs": self._state.outputs})
        return self._state

    async def _drive(self) -> None:
        while True:
            if self._ready:
                await self._hold_if_paused()
                self._check_history()
            while self._ready:
                if len(self._running) >= self._limits.max_parallel_nodes and workflow.patched(
                    BOUND_PARALLEL_NODES
                ):
                    break  # one run never holds more than its share of the worker's slots
                node_id = self._ready.pop(0)
                self._state.steps += 1
                if self._spec.max_steps is not None and self._state.steps > self._spec.max_steps:
                    raise RunFailure(
                        f"the graph executed max_steps={self._spec.max_steps} nodes without "
                        f"finishing (next was {node_id!r})"
                    )
                self._running[node_id] = asyncio.create_task(self._run_node(node_id))
            if not self._running:
                return
            await workflow.wait_condition(lambda: bool(self._finished))
            while self._finished:
                node_id, error = self._finished.pop(0)
                del self._running[node_id]
                await self._after(node_id, error)

    def _check_history(self) -> None:
        length = workflow.info().get_current_history_length()
        if self._enforce and length > MAX_HISTORY_EVENTS:
            # Temporal terminates a run at 51,200 events; end it first, with a reason.
            raise RunFailure(
                f"the run's history reached {length} events after {self._state.steps} node "
                "executions; lower max_steps or split the graph"
            )

    async def _inline_turn(self, cost: int, steps: int = 1) -> None:
        """Wait until this in-workflow node may run in the current activation: after 20 of them,
        or 1 MiB of variables read, the activation is handed back to Temporal (a no-op local
        activity: no server round trip, unlike a timer, which the dev server fires ~1 s later),
        so the deadlock detector never fires. Parallel nodes share one hand-back."""
        while True:
            length = workflow.info().get_current_history_length()
            if length != self._inline_since:  # a new workflow task: the count starts again
                self._inline_since, self._inline_steps, self._inline_read = length, 0, 0
            fits = (
                self._inline_steps < IN_WORKFLOW_STEPS_PER_ACTIVATION
                and self._inline_read + cost <= IN_WORKFLOW_READ_BYTES_PER_ACTIVATION
            )
            first = self._inline_steps == 0 and self._inline_read == 0
            if fits or first or not workflow.patched(YIELD_BETWEEN_INLINE_NODES):
                self._inline_steps += steps
                self._inline_read += cost
                return
            if self._yielding is None:
                self._yielding = asyncio.create_task(self._hand_back())
            await self._yielding

    async def _hand_back(self) -> None:
        await workflow.execute_local_activity(
            graph_yield, start_to_close_timeout=timedelta(seconds=10)
        )
        self._inline_steps, self._inline_read, self._yielding = 0, 0, None
        self._trim_stream()

    def _trim_stream(self) -> None:
        """Keep the event stream's memory bounded in long runs (loops publish per node)."""
        stream = self._stream.get_state()
        if len(stream.log) > MAX_STREAM_ITEMS:
            self._stream.truncate(stream.base_offset + len(stream.log) - MAX_STREAM_ITEMS)

    def _read_cost(self, sources: list[str]) -> int:
        """What evaluating the expressions costs, in bytes of variables read (the CEL engine
        converts each value it reads, and a result holds a copy per use): the size of each name,
        once per use; `matches()` counts MATCHES_COST_FACTOR times (a regular expression walks
        its text ~16x slower than the engine converts it)."""
        sizes = self._read_weights
        total = 0
        for source in sources:
            read = sum(sizes.get(name, 0) for name in referenced_names(source))
            total += read * (MATCHES_COST_FACTOR if "matches" in source else 1)
        return total

    def _read_problem(self, sources: list[str], cost: int) -> str | None:
        for source in sources:
            if "matches" in source and self._read_cost([source]) > MATCHES_READ_BYTES:
                return (
                    f"an expression that calls matches() may read "
                    f"{MATCHES_READ_BYTES // MATCHES_COST_FACTOR} "
                    "bytes of variables at most"
                )
        if cost > self._limits.max_node_read_bytes:
            return (
                f"its expressions would read {cost} bytes of variables; the limit is "
                f"{self._limits.max_node_read_bytes}"
            )
        return None

    async def _stop_running(self) -> None:
        for task in self._running.values():
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._running.clear()

    # ---- edges ------------------------------------------------------------------------------

    async def _after(self, node_id: str, error: str | None) -> None:
        outcome = "failure" if error else "success"
        edges = self._plan.out_edges[node_id]
        handled = error is None or any(
            self._spec.edges[i].on in ("failure", "always") for i in edges
        )
        if not handled:
            raise RunFailure(f"node {node_id!r} failed: {error}")
        if self._enforce:
            conditions = [w for i in edges if (w := self._spec.edges[i].when) is not None]
            total = self._read_cost(conditions)
            if total > self._limits.max_node_read_bytes:
                # The node's edges are part of its work: bounded together, like its expressions.
                raise RunFailure(
                    f"the conditions of the edges out of {node_id!r} would read {total} bytes "
                    f"of variables; the limit is {self._limits.max_node_read_bytes}"
                )
        variables = self._variables()
        for i in edges:
            edge = self._spec.edges[i]
            taken = edge.on in (outcome, "always")
            if taken and edge.when is not None and self._enforce:
                cost = self._read_cost([edge.when])
                problem = self._read_problem([edge.when], cost)
                if problem is not None:
                    raise RunFailure(f"edge {edge.source} -> {edge.target}: when {problem}")
                await self._inline_turn(cost, steps=0)  # many edges are many reads
            if taken and edge.when is not None:
                try:
                    taken = bool(evaluate(edge.when, variables, self._expression_limits))
                except ExpressionError as exc:
                    raise RunFailure(f"edge {edge.source} -> {edge.target}: when {exc}") from None
            if i in self._plan.back_edges:
                if taken:
                    self._loop_back(edge.target)
                continue
            self._edges[i] = TAKEN if taken else NOT_TAKEN
            self._settle(edge.target)

    def _settle(self, node_id: str) -> None:
        """Once every forward edge into the node is resolved, run it or skip it."""
        incoming = self._plan.forward_in[node_id]
        if any(self._edges[i] == PENDING for i in incoming):
            return
        node = self._node_state[node_id]
        if node.status is not NodeStatus.CREATED or node_id in self._ready:
            return
        if any(self._edges[i] == TAKEN for i in incoming):
            self._ready.append(node_id)
            return
        self._update_status(node=node, node_status=NodeStatus.SKIPPED)
        for i in self._plan.out_edges[node_id]:
            if i not in self._plan.back_edges:
                self._edges[i] = NOT_TAKEN
                self._settle(self._spec.edges[i].target)

    def _loop_back(self, target: str) -> None:
        """Run `target` again, and reset what comes after it so that it can run again too."""
        region = {target}
        queue = [target]
        while queue:
            for i in self._plan.out_edges[queue.pop()]:
                if i in self._plan.back_edges:
                    continue
                self._edges[i] = PENDING
                nxt = self._spec.edges[i].target
                if nxt not in region:
                    region.add(nxt)
                    queue.append(nxt)
        for node_id in sorted(region):
            if node_id in self._running:
                continue
            node = self._node_state[node_id]
            if node.status is not NodeStatus.CREATED:
                self._reset(node)
        self._log_event("node", f"{target} runs again (loop)", node_id=target, status="looping")
        if target not in self._ready and target not in self._running:
            self._ready.append(target)

    def _reset(self, node: NodeState) -> None:
        # A new execution of the node in a loop: a fresh lifecycle, not a transition back.
        node.status = NodeStatus.CREATED
        node.started_at = node.ended_at = None
        node.error = None
        node.attempts = 0

    # ---- nodes ------------------------------------------------------------------------------

    def _variables(self) -> dict[str, Any]:
        variables = dict(self._state.variables)
        for node_id in self._plan.node_ids:
            variables.setdefault(node_id, None)  # null while it has not run
        return variables

    async def _run_node(self, node_id: str) -> None:
        spec = self._by_id[node_id]
        node = self._node_state[node_id]
        node.runs += 1
        error: str | None = None
        try:
            self._update_status(node=node, node_status=NodeStatus.INITIALIZING)
            if self._enforce:
                sources = _node_expressions(spec)
                cost = self._read_cost(sources)
                problem = self._read_problem(sources, cost)
                if problem is not None:
                    raise NodeFailed(problem)
                # Every node evaluates in the workflow; those that run no activity (and those
                # whose expressions fail before theirs) count as steps of the activation.
                await self._inline_turn(cost, steps=1 if spec.type in IN_WORKFLOW_TYPES else 0)
            try:
                prepared = self._prepare(spec)
            except ExpressionError as exc:
                raise NodeFailed(f"expression {exc}") from None
            self._update_status(node=node, node_status=NodeStatus.INITIALIZED)
            self._update_status(node=node, node_status=NodeStatus.EXECUTING)
            value, metadata = await self._execute(spec, node, prepared)
            if self._enforce:
                self._check_output_size(node_id, value)
            if spec.type == "transform":
                self._state.variables["vars"] = {**self._state.variables["vars"], **value}
        except NodeFailed as exc:
            if node.status is NodeStatus.INITIALIZING:
                self._inline_steps += 1  # failed before any activity: it ran in the workflow
            error = str(exc)
            self._state.variables[node_id] = {
                "value": None,
                "metadata": {"status": "failed", "error": error, "runs": node.runs},
            }
            self._update_status(node=node, node_status=NodeStatus.FAILED, error=error)
        except asyncio.CancelledError:
            if node.status in (NodeStatus.INITIALIZING, NodeStatus.EXECUTING):
                self._update_status(node=node, node_status=NodeStatus.CANCELLED)
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must fail the node, never hang the run
            error = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
            self._update_status(node=node, node_status=NodeStatus.FAILED, error=error)
        else:
            metadata.update({"status": "completed", "runs": node.runs})
            self._state.variables[node_id] = {"value": value, "metadata": metadata}
            self._update_status(node=node, node_status=NodeStatus.COMPLETED)
        self._finished.append((node_id, error))

    def _check_output_size(self, node_id: str, value: Any) -> None:
        """A node output over its bound, or one that would take the run's variables over theirs,
        fails the node (Temporal would refuse the run's state past 2 MB, on every retry)."""
        limits = self._limits
        size, weight = read_weight(value)
        if size > limits.max_node_output_bytes:
            raise NodeFailed(f"output is {size} bytes; the limit is {limits.max_node_output_bytes}")
        sizes = {**self._output_bytes, node_id: size}
        weights = {node_id: weight}
        if node_id in self._by_id and self._by_id[node_id].type == "transform":
            sizes["vars"], weights["vars"] = read_weight({**self._state.variables["vars"], **value})
        total = sum(sizes.values())
        if total > limits.max_variables_bytes:
            raise NodeFailed(
                f"the run's variables would be {total} bytes; the limit is "
                f"{limits.max_variables_bytes}"
            )
        self._output_bytes = sizes
        self._read_weights.update(weights)

    def _prepare(self, spec: NodeSpec) -> dict[str, Any]:
        """Evaluate the node's expressions and templates against the current variables."""
        variables = self._variables()
        config = spec.config
        limits = self._expression_limits
        if spec.type == "llm":
            return {"prompt": render(config["prompt"], variables, limits)}
        if spec.type == "tool":
            args = {
                k: evaluate(v, variables, limits) for k, v in (config.get("args") or {}).items()
            }
            return {"tool": config["tool"], "args": args}
        if spec.type == "condition":
            return {"value": evaluate(config["expression"], variables, limits)}
        if spec.type == "transform":
            return {
                "set": {k: evaluate(v, variables, limits) for k, v in sorted(config["set"].items())}
            }
        if spec.type == "human_input":
            return {"question": render(config["question"], variables, limits)}
        if spec.type == "agent":
            return {"query": render(config["query"], variables, limits)}
        raise NodeFailed(f"unknown node type {spec.type!r}")  # validation prevents this

    async def _execute(
        self, spec: NodeSpec, node: NodeState, prepared: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        if spec.type == "condition":
            return prepared["value"], {}
        if spec.type == "transform":
            return prepared["set"], {}  # merged into `vars` once its size is checked
        if spec.type == "human_input":
            return {"text": await self._ask(spec.id, prepared["question"])}, {}
        if spec.type == "agent":
            return await self._child_agent(spec, node, prepared["query"])
        if spec.type == "llm":
            out = await self._activity(
                spec,
                node,
                GraphNodeActivities.graph_llm,
                CompleteInput(prompt=prepared["prompt"], node_id=spec.id),
            )
            self._state.usage.add(out.usage)
            node.usage = out.usage
            return {"text": out.text}, {"usage": out.usage.model_dump()}
        result = await self._activity(
            spec,
            node,
            ContextActivities.run_tool,
            ToolCallInput(name=prepared["tool"], arguments=prepared["args"]),
            defaults=timeouts.TOOL_CALL,
        )
        return {"result": result.result, "empty": result.empty}, {"tool": prepared["tool"]}

    async def _activity(
        self,
        spec: NodeSpec,
        node: NodeState,
        method: Any,
        arg: Any,
        defaults: timeouts.ActivityOptions = timeouts.LLM_STAGE,
    ) -> Any:
        retry = defaults.retry
        if spec.retry is not None:
            retry = RetryPolicy(
                initial_interval=timedelta(seconds=spec.retry.initial_interval),
                backoff_coefficient=spec.retry.backoff,
                maximum_attempts=spec.retry.max_attempts,
                non_retryable_error_types=timeouts.NON_RETRYABLE,
            )
        start_to_close = (
            timedelta(seconds=spec.timeout_s) if spec.timeout_s else defaults.start_to_close
        )
        try:
            out = await workflow.execute_activity_method(
                method,
                arg,
                start_to_close_timeout=start_to_close,
                heartbeat_timeout=defaults.heartbeat,
                retry_policy=retry,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=spec.id,
            )
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from None
            node.attempts = _attempts(exc)
            raise NodeFailed(failure_message(exc)) from None
        node.attempts = getattr(out, "attempt", 1)
        return out

    async def _ask(self, node_id: str, question: str) -> str:
        # One question at a time: parallel human_input nodes queue up.
        await workflow.wait_condition(lambda: self._state.waiting_node is None)
        state = self._state
        state.waiting_node = node_id
        state.question = question
        state.waiting_since = workflow.now()
        self._input_text = None
        self._update_status(run=RunStatus.WAITING_FOR_INPUT, message=question)
        self._log_event("question", question, question=question, node_id=node_id)
        limit = timedelta(seconds=self._inp.input_timeout_s)
        try:
            await workflow.wait_condition(lambda: self._input_text is not None, timeout=limit)
        except TimeoutError:
            raise RunFailure(
                f"no input arrived for node {node_id!r} within {int(limit.total_seconds())} "
                "seconds; the run stopped waiting"
            ) from None
        finally:
            state.waiting_node = None
            state.waiting_since = None
        text = self._input_text or ""
        self._input_text = None
        return text

    async def _child_agent(
        self, spec: NodeSpec, node: NodeState, query: str
    ) -> tuple[Any, dict[str, Any]]:
        child_id = f"{self._state.run_id}-{spec.id}-{node.runs}"
        try:
            result = await workflow.execute_child_workflow(
                "AgentWorkflow",
                AgentInput(query=query, tenant=self._state.tenant),
                id=child_id,
                task_timeout=workflow.info().task_timeout,
                result_type=AgentState,
            )
        except ChildWorkflowError as exc:
            raise NodeFailed(f"agent run {child_id} failed: {failure_message(exc)}") from None
        self._state.usage.add(result.usage if result.usage else Usage())
        return {"answer": result.answer, "status": result.status.value}, {"run_id": child_id}


def _node_expressions(spec: NodeSpec) -> list[str]:
    """Every expression the node evaluates (templates' `{{ }}` parts included)."""
    config = spec.config
    sources = [config["expression"]] if isinstance(config.get("expression"), str) else []
    for key in ("set", "args"):
        if isinstance(config.get(key), dict):
            sources += [v for v in config[key].values() if isinstance(v, str)]
    for key in ("prompt", "question", "query"):
        if isinstance(config.get(key), str):
            sources += list(template_expressions(config[key]))
    return sources


def _input_problem(inp: GraphInput) -> str | None:
    """What makes a decoded input unrunnable: a spec that does not validate (tools aside: the
    worker does not know the gateway's registry; an unknown tool fails its node), or an input over
    the run's limits."""
    checked = validate(inp.spec, None, inp.limits)
    if not checked.ok:
        listed = "; ".join(f"{p.path}: {p.message}" for p in checked.problems[:5])
        more = len(checked.problems) - 5
        return f"the graph is not valid: {listed}" + (f" (and {more} more)" if more > 0 else "")
    limits = inp.limits
    problems = json_problems(
        inp.input, max_depth=limits.max_input_depth, max_bytes=limits.max_input_bytes
    )
    if problems:
        return "the graph's input is not acceptable: " + "; ".join(
            f"{path}: {message}" for path, message in problems[:5]
        )
    return None


def _attempts(exc: ActivityError) -> int:
    # Our activities put the attempt in the failure's details (activities.base.call).
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        detail = cause.details[0]
        attempt = detail.get("attempt") if isinstance(detail, dict) else None
        if isinstance(attempt, int):
            return attempt
    return 1


__all__ = ["GraphSpec", "GraphWorkflow"]
