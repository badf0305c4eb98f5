"""GraphWorkflow: runs a validated GraphSpec (pinned in the run's input).

What runs next is the scheduler's (`workflows/scheduler.py`, pure); how each kind of node runs
is its kind's (`workflows/node_kinds.py`) through a NodeRun (`workflows/node_runs.py`). This
class keeps the run's lifecycle: its status (derived from its nodes), pause, breakpoints and
steps, the event stream, and continue-as-new for long graphs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.contrib.workflow_streams import WorkflowStream

with workflow.unsafe.imports_passed_through():
    from shared import EVENTS_TOPIC, RUN_KIND, StreamEvent
    from workflows.expressions import ExpressionError, evaluate
    from workflows.graph_budget import ReadBudget
    from workflows.graph_spec import GraphSpec, input_problems, validate
    from workflows.limits import json_problems, read_weight
    from workflows.node_kinds import NodeBase
    from workflows.node_runs import NodeRun
    from workflows.run_control import RunControl, RunFailure, decode_input
    from workflows.scheduler import MaxStepsReached, Scheduler, UnhandledFailure
    from workflows.state import (
        TERMINAL_STATUSES,
        GraphInput,
        GraphState,
        NodeState,
        NodeStatus,
        OpenQuestion,
        RunStatus,
        UserInput,
    )

# workflow.patched() ids (docs/versioning.md): runs recorded before them replay as they ran.
BOUND_PARALLEL_NODES = "bound-parallel-nodes"
ENFORCE_LIMITS = "enforce-limits-in-worker"  # input, expressions and outputs checked here too
GRAPH_ENGINE_V2 = "graph-engine-v2"  # status from nodes; several questions at once
CONTINUE_AS_NEW = "graph-continue-as-new"
# Past this many history events a run fails with a reason (Temporal terminates at 51,200).
MAX_HISTORY_EVENTS = 40_000
# Items of the event stream kept (a reconnecting client asking for an older one gets the oldest).
MAX_STREAM_ITEMS = 2000
_UNREADABLE = GraphSpec(name="unreadable", entry="none", nodes=[])


@workflow.defn
class GraphWorkflow(RunControl):
    _state: GraphState

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        now = workflow.now()
        # The worker never trusts its input: what is wrong with it fails the run once, in `run`.
        inp, self._unrunnable = decode_input(raw, GraphInput)
        self.enforce = workflow.patched(ENFORCE_LIMITS)
        self.v2 = workflow.patched(GRAPH_ENGINE_V2)
        if inp is None:
            inp = GraphInput(spec=_UNREADABLE)
        elif self.enforce:
            self._unrunnable = _input_problem(inp)
        if self._unrunnable is not None:  # keep what can be shown: the name, the tenant
            spec = _UNREADABLE.model_copy(update={"name": inp.spec.name})
            inp = GraphInput(spec=spec, tenant=inp.tenant)
        self.inp, spec = inp, inp.spec
        self.limits = inp.limits
        self.expression_limits = inp.limits if self.enforce else None  # None: as before limits
        self._by_id: dict[str, NodeBase] = {n.id: n for n in spec.nodes}
        self._state = inp.state or GraphState(
            run_id=workflow.info().workflow_id,
            tenant=inp.tenant,
            graph=spec.name,
            version=spec.version,
            variables={"input": inp.input, "vars": {}},
            nodes=[NodeState(id=n.id, name=n.id, type=n.type, created_at=now) for n in spec.nodes],
            created_at=now,
            updated_at=now,
        )
        self._state.continued_as_new += inp.state is not None
        self._sched = Scheduler(spec.plan(), self._state.scheduler, legacy_order=not self.v2)
        self._state.scheduler = self._sched.state
        self._node_state = {n.id: n for n in self._state.nodes}
        self._max_input_chars = inp.max_input_chars
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: list[tuple[str, str | None]] = []  # (node id, error or None)
        self.answers: dict[str, str] = {}
        self.continuing = False
        self.budget = ReadBudget(inp.limits, self._trim_stream)
        self.output_bytes: dict[str, int] = {}
        for name, value in self._state.variables.items():  # a continued run weighs them again
            size, self.budget.weights[name] = read_weight(value) if self.enforce else (0, 0)
            if name != "input":
                self.output_bytes[name] = size
        self._stream = WorkflowStream(inp.stream)
        self._events = self._stream.topic(EVENTS_TOPIC, type=StreamEvent)

    @workflow.query
    def get_state(self) -> GraphState:
        return self._state

    @property
    def state(self) -> GraphState:
        return self._state

    def _result_fields(self) -> dict[str, Any]:
        return {"outputs": self._state.outputs}

    # ---- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: RawValue) -> GraphState:
        if self._unrunnable is not None:
            workflow.upsert_search_attributes([RUN_KIND.value_set("graph")])
            await self._fail_unrunnable(self._unrunnable)
        if self._state.status is RunStatus.PENDING:
            workflow.upsert_search_attributes([RUN_KIND.value_set("graph")])
            self._update_status(
                run=RunStatus.RUNNING, message=f"graph {self.inp.spec.name} started"
            )
            self._sched.start()
        for asked in self._state.questions:  # a continued run waits on where it left off
            self._start(asked.node_id, resumed=asked)
        try:
            await self._drive()
        except asyncio.CancelledError:
            await self._stop_running()
            for node in self._state.nodes:
                if node.status in (NodeStatus.CREATED, NodeStatus.INITIALIZED):
                    self.set_node(node, NodeStatus.CANCELLED)
            self._update_status(run=RunStatus.CANCELLED, message="cancelled")
            await self._finish_stream({"outputs": self._state.outputs})
            raise
        except (RunFailure, MaxStepsReached) as exc:
            await self._stop_running()
            await self._fail(_failure(exc, self.inp.spec.max_steps))
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError):
                raise  # a deploy that breaks replay: the task fails until the code is fixed
            await self._stop_running()  # a bug fails the run, never its task forever
            await self._fail(f"internal error: {type(exc).__name__}: {str(exc)[:300]}")
        for node in self._state.nodes:
            if node.status is NodeStatus.CREATED:
                self.set_node(node, NodeStatus.SKIPPED)
        self._state.outputs = {
            node_id: self._state.variables[node_id]
            for node_id in self._sched.plan.node_ids
            if node_id in self._sched.plan.sinks and node_id in self._state.variables
        }
        self._update_status(run=RunStatus.COMPLETED, message="graph finished")
        await self._finish_stream({"outputs": self._state.outputs})
        return self._state

    async def _drive(self) -> None:
        while True:
            if self._sched.ready:
                self._check_history()
                if not await self._continue_as_new_if_due():
                    await self._start_ready()
            if self._sched.done:
                return
            await workflow.wait_condition(lambda: bool(self._finished))
            while self._finished:
                node_id, error = self._finished.pop(0)
                del self._tasks[node_id]
                await self._after(node_id, error)

    async def _start_ready(self) -> None:
        while self._sched.ready:
            if len(self._tasks) >= self.limits.max_parallel_nodes and workflow.patched(
                BOUND_PARALLEL_NODES
            ):
                return  # one run never holds more than its share of the worker's slots
            node_id = self._sched.ready[0]
            if self.inp.breakpoints == "*" or node_id in self.inp.breakpoints:
                self._state.paused = True
                self.log_event("control", f"breakpoint before {node_id}", node_id=node_id)
            await self._hold_if_paused()  # one node passes; a step pauses again after it
            self._start(self._sched.take(self.inp.spec.max_steps, node_id))

    def _start(self, node_id: str, resumed: OpenQuestion | None = None) -> None:
        node_run = NodeRun(self, self._by_id[node_id], self._node_state[node_id])
        node_run.resumed = resumed
        self._state.steps = self._sched.state.steps

        async def run() -> None:
            error = await node_run.run()  # never raises but CancelledError
            self._finished.append((node_id, error))
            self._refresh_status()

        self._tasks[node_id] = asyncio.create_task(run())

    async def _after(self, node_id: str, error: str | None) -> None:
        """Decide which edges out of a finished node are taken, and hand that to the scheduler."""
        try:
            candidates = self._sched.candidates(node_id, "failure" if error else "success")
        except UnhandledFailure:
            raise RunFailure(f"node {node_id!r} failed: {error}") from None
        edges = self.inp.spec.edges
        out = self._sched.plan.out_edges[node_id]
        conditions = [w for i in out if (w := edges[i].when) is not None]
        if self.enforce and self.budget.cost(conditions) > self.limits.max_node_read_bytes:
            raise RunFailure(
                f"the conditions of the edges out of {node_id!r} would read "
                f"{self.budget.cost(conditions)} bytes of variables; the limit is "
                f"{self.limits.max_node_read_bytes}"
            )
        variables, taken = self.variables(), set()
        for i in candidates:
            edge = edges[i]
            if edge.when is not None:
                if self.enforce:
                    cost = self.budget.cost([edge.when])
                    problem = self.budget.problem([edge.when], cost)
                    if problem is not None:
                        raise RunFailure(f"edge {edge.source} -> {edge.target}: when {problem}")
                    await self.budget.turn(cost, steps=0)  # many edges are many reads
                try:
                    if not evaluate(edge.when, variables, self.expression_limits):
                        continue
                except ExpressionError as exc:
                    raise RunFailure(f"edge {edge.source} -> {edge.target}: when {exc}") from None
            taken.add(i)
        for change in self._sched.finish(node_id, taken):
            node = self._node_state[change.node_id]
            if change.kind == "skipped":
                self.set_node(node, NodeStatus.SKIPPED)
            elif change.kind == "reset":  # a new execution in a loop: a fresh lifecycle
                node.status, node.started_at, node.ended_at = NodeStatus.CREATED, None, None
                node.error, node.attempts, node.child_run_id = None, 0, None
            else:
                self.log_event(
                    "node", f"{node.id} runs again (loop)", node_id=node.id, status="looping"
                )

    # ---- status, questions and input ----------------------------------------------------

    def _refresh_status(self, message: str = "") -> None:
        """The run's status follows its nodes: running while any node works; waiting for input
        when a node waits and none works; paused when nodes are held and none works or waits.
        (Runs before v2 show a waiting question first, whatever else runs.)"""
        if self._state.status in (RunStatus.PENDING, *TERMINAL_STATUSES):
            return
        status = RunStatus.RUNNING
        waiting = {q.node_id for q in self._state.questions}
        done = {node_id for node_id, _ in self._finished}
        if self.v2 and any(n not in waiting and n not in done for n in self._tasks):
            status = RunStatus.RUNNING
        elif waiting:
            status = RunStatus.WAITING_FOR_INPUT
        elif self._held:
            status = RunStatus.PAUSED
        if status is not self._state.status:
            self._update_status(run=status, message=message)

    def _on_hold_change(self, message: str) -> None:
        self._refresh_status(message)

    def open_question(self, asked: OpenQuestion) -> None:
        state = self._state
        state.questions.append(asked)
        self._show_first_question()
        self._refresh_status(message=asked.question)
        self.log_event("question", asked.question, question=asked.question, node_id=asked.node_id)

    def close_question(self, node_id: str) -> None:
        self._state.questions = [q for q in self._state.questions if q.node_id != node_id]
        self._show_first_question()

    def _show_first_question(self) -> None:
        first = self._state.questions[0] if self._state.questions else None
        self._state.question = first.question if first else None
        self._state.waiting_node = first.node_id if first else None
        self._state.waiting_since = first.asked_at if first else None

    def _input_problem(self, payload: UserInput) -> tuple[str, str] | None:
        waiting = [q.node_id for q in self._state.questions]
        if payload.node_id is None and len(waiting) > 1:
            return "InvalidInput", (
                f"{len(waiting)} nodes wait for input ({', '.join(waiting)}); "
                "say which one with node_id"
            )
        if payload.node_id is not None and payload.node_id not in waiting:
            listed = f"; waiting: {', '.join(waiting)}" if waiting else ""
            return "InvalidState", f"node {payload.node_id!r} is not waiting for input{listed}"
        if not waiting:
            status = self._state.status.value
            return "InvalidState", f"the run is {status}, not waiting for input"
        return self._text_problem(payload.text)

    def _accept_input(self, payload: UserInput) -> None:
        node_id = payload.node_id or self._state.questions[0].node_id
        self.answers[node_id] = payload.text.strip()
        self.close_question(node_id)
        self._refresh_status("input received")

    # ---- what nodes use --------------------------------------------------------------------

    def set_node(self, node: NodeState, status: NodeStatus, error: str | None = None) -> None:
        self._update_status(node=node, node_status=status, error=error)

    def log_event(self, kind: str, text: str, **data: Any) -> None:
        self._log_event(kind, text, **data)

    def variables(self) -> dict[str, Any]:
        variables = dict(self._state.variables)
        for node_id in self._sched.plan.node_ids:
            variables.setdefault(node_id, None)  # null while it has not run
        return variables

    # ---- long runs -------------------------------------------------------------------------

    def _check_history(self) -> None:
        length = workflow.info().get_current_history_length()
        if self.enforce and length > MAX_HISTORY_EVENTS:
            raise RunFailure(
                f"the run's history reached {length} events after {self._state.steps} node "
                "executions; lower max_steps or split the graph"
            )

    async def _continue_as_new_if_due(self) -> bool:
        """Past the history threshold (or when Temporal suggests it), hold new nodes until the
        running ones finish, then continue as new with the scheduler, variables, open
        questions and stream. True while nodes are held for it."""
        info = workflow.info()
        due = (
            info.get_current_history_length() > self.inp.history_threshold
            or info.is_continue_as_new_suggested()
        )
        if not due or not workflow.patched(CONTINUE_AS_NEW):
            return False
        waiting = {q.node_id for q in self._state.questions}
        if any(node_id not in waiting for node_id in self._tasks):
            return True  # a running activity or child cannot move to the next run
        self.continuing = True
        await self._stop_running()  # the waits pick up again in the next run
        self._trim_stream()
        inp = self.inp.model_copy(update={"state": self._state})
        await self._stream.continue_as_new(
            lambda stream: [inp.model_copy(update={"stream": stream})]
        )
        return True  # not reached

    def _trim_stream(self) -> None:
        """Keep the event stream's memory bounded in long runs (loops publish per node)."""
        stream = self._stream.get_state()
        if len(stream.log) > MAX_STREAM_ITEMS:
            self._stream.truncate(stream.base_offset + len(stream.log) - MAX_STREAM_ITEMS)

    async def _stop_running(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


def _failure(exc: Exception, max_steps: int | None) -> str:
    if isinstance(exc, MaxStepsReached):
        return (
            f"the graph executed max_steps={max_steps} nodes without finishing "
            f"(next was {exc.args[0]!r})"
        )
    return str(exc)


def _input_problem(inp: GraphInput) -> str | None:
    """What makes a decoded input unrunnable: a spec that does not validate (tools aside: the
    worker does not know the gateway's registry; an unknown tool fails its node), an input over
    the run's limits or not matching the graph's input schema."""
    checked = validate(inp.spec, None, inp.limits)
    if not checked.ok:
        listed = "; ".join(f"{p.path}: {p.message}" for p in checked.problems[:5])
        more = len(checked.problems) - 5
        return f"the graph is not valid: {listed}" + (f" (and {more} more)" if more > 0 else "")
    limits = inp.limits
    problems = json_problems(
        inp.input, max_depth=limits.max_input_depth, max_bytes=limits.max_input_bytes
    )
    if not problems and inp.state is None:
        problems = input_problems(inp.spec.input_schema, inp.input)
    if problems:
        return "the graph's input is not acceptable: " + "; ".join(
            f"{path}: {message}" for path, message in problems[:5]
        )
    return None


__all__ = ["GraphSpec", "GraphWorkflow"]
