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
    from workflows.graph_budget import ReadBudget
    from workflows.graph_edges import taken_edges
    from workflows.graph_spec import GraphSpec, run_input_problem
    from workflows.graph_waits import NodeWaits
    from workflows.node_kinds import NodeBase
    from workflows.node_runs import NodeRun
    from workflows.patches import (
        BOUND_PARALLEL_NODES,
        CONTINUE_AS_NEW,
        ENFORCE_LIMITS,
        GRAPH_ENGINE_V2,
        check_baseline,
    )
    from workflows.run_control import RunFailure, decode_input
    from workflows.scheduler import MaxStepsReached, Scheduler
    from workflows.state import GraphInput, GraphState, NodeStatus, OpenQuestion, RunStatus

# Past this many history events a run fails with a reason (Temporal terminates at 51,200).
MAX_HISTORY_EVENTS = 40_000
# Items of the event stream kept (a reconnecting client asking for an older one gets the oldest).
MAX_STREAM_ITEMS = 2000
_UNREADABLE = GraphSpec(name="unreadable", entry="none", nodes=[])


@workflow.defn
class GraphWorkflow(NodeWaits):
    _state: GraphState

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        now = workflow.now()
        # The worker never trusts its input: what is wrong with it fails the run once, in `run`.
        inp, self._unrunnable = decode_input(raw, GraphInput)
        self._baseline = inp.baseline if inp is not None else 0
        check_baseline(self._baseline)
        self.enforce = self._patched(ENFORCE_LIMITS)
        self.v2 = self._patched(GRAPH_ENGINE_V2)
        if inp is None:
            inp = GraphInput(spec=_UNREADABLE)
        elif self.enforce:
            self._unrunnable = run_input_problem(inp.spec, inp.input, inp.limits, inp.state is None)
        if self._unrunnable is not None:  # keep what can be shown: the name, the tenant
            spec = _UNREADABLE.model_copy(update={"name": inp.spec.name})
            inp = GraphInput(spec=spec, tenant=inp.tenant)
        self.inp, spec = inp, inp.spec
        self.limits = inp.limits
        self.expression_limits = inp.limits if self.enforce else None  # None: as before limits
        self._by_id: dict[str, NodeBase] = {n.id: n for n in spec.nodes}
        self._state = inp.state or inp.new_state(workflow.info().workflow_id, now)
        self._state.continued_as_new += inp.state is not None
        self.scheduler = Scheduler(spec.plan(), self._state.scheduler, legacy_order=not self.v2)
        self._state.scheduler = self.scheduler.state
        self._node_state = {n.id: n for n in self._state.nodes}
        self._max_input_chars = inp.max_input_chars
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: list[tuple[str, str | None]] = []  # (node id, error or None)
        self.answers: dict[str, str] = {}
        self.continuing = False
        self.budget = ReadBudget(inp.limits, self._trim_stream, self._baseline)
        # Bytes of each output in `variables` (a continued run weighs what it carries again).
        carried = self._state.variables if inp.state else {"input": inp.input}
        self.output_bytes = self.budget.weigh(carried) if self.enforce else {}
        self._stream = WorkflowStream(inp.stream)
        self._events = self._stream.topic(EVENTS_TOPIC, type=StreamEvent)

    @workflow.query
    def get_state(self) -> GraphState:
        return self._state

    def _result_fields(self) -> dict[str, Any]:
        return {"outputs": self._state.outputs}

    # ---- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: RawValue) -> GraphState:
        if self._state.status is RunStatus.PENDING and not self._attributes_at_start:
            workflow.upsert_search_attributes([RUN_KIND.value_set("graph")])
        if self._unrunnable is not None:
            await self._fail_unrunnable(self._unrunnable)
        if self._state.status is RunStatus.PENDING:
            self._update_status(
                run=RunStatus.RUNNING, message=f"graph {self.inp.spec.name} started"
            )
            self.scheduler.start()
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
            await self._fail(str(exc))
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
            for node_id in self.scheduler.plan.node_ids
            if node_id in self.scheduler.plan.sinks and node_id in self._state.variables
        }
        self._update_status(run=RunStatus.COMPLETED, message="graph finished")
        await self._finish_stream({"outputs": self._state.outputs})
        return self._state

    async def _drive(self) -> None:
        while True:
            if self.scheduler.ready:
                self._check_history()
                if not await self._continue_as_new_if_due():
                    await self._start_ready()
            if self.scheduler.done:
                return
            await workflow.wait_condition(lambda: bool(self._finished))
            while self._finished:
                node_id, error = self._finished.pop(0)
                del self._tasks[node_id]
                await self._after(node_id, error)

    async def _start_ready(self) -> None:
        while self.scheduler.ready:
            if len(self._tasks) >= self.limits.max_parallel_nodes and self._patched(
                BOUND_PARALLEL_NODES
            ):
                return  # one run never holds more than its share of the worker's slots
            node_id = self.scheduler.ready[0]
            if self.inp.breakpoints == "*" or node_id in self.inp.breakpoints:
                self._state.paused = True
                self.log_event("control", f"breakpoint before {node_id}", node_id=node_id)
            await self._hold_if_paused()  # one node passes; a step pauses again after it
            self._start(self.scheduler.take(self.inp.spec.max_steps, node_id))

    def _start(self, node_id: str, resumed: OpenQuestion | None = None) -> None:
        node_run = NodeRun(self, self._by_id[node_id], self._node_state[node_id])
        node_run.resumed = resumed
        self._state.steps = self.scheduler.state.steps

        async def run() -> None:
            error = await node_run.run()  # never raises but CancelledError
            self._finished.append((node_id, error))
            self._refresh_status()

        self._tasks[node_id] = asyncio.create_task(run())

    async def _after(self, node_id: str, error: str | None) -> None:
        """Decide which edges out of a finished node are taken; apply what that changes."""
        taken = await taken_edges(self, node_id, error)
        for change in self.scheduler.finish(node_id, taken):
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

    def variables(self) -> dict[str, Any]:
        """What expressions read: `input`, `vars` and every node's output (null until it ran)."""
        return {**dict.fromkeys(self._by_id), **self._state.variables}

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
        if not due or not self._patched(CONTINUE_AS_NEW):
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


__all__ = ["GraphSpec", "GraphWorkflow"]
