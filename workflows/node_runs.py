"""One execution of one graph node: its lifecycle, the checks around it (what its expressions
read, the size of its output) and what its kind asks of Temporal (an activity, a wait for a
person, a child run). Whatever happens, the node ends completed, failed or cancelled and the
graph hears of it: nothing a node does can leave a run hanging.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

from activities.tools.catalog import needs_approval
from shared import RUN_AGENT, RUN_KIND, RUN_STAGE, RUN_STATUS, TENANT, Usage
from workflows import timeouts
from workflows.agent_spec import DEFAULT_AGENT
from workflows.execution import execute
from workflows.expressions import ExpressionError, evaluate, render
from workflows.limits import read_weight
from workflows.node_kinds import NodeBase, NodeFailed, Output, TransformNode
from workflows.patches import CURRENT_BASELINE
from workflows.run_control import failure_message
from workflows.state import (
    AgentInput,
    AgentState,
    ApprovalStatus,
    NodeState,
    NodeStatus,
    OpenQuestion,
)

if TYPE_CHECKING:
    from workflows.graph import GraphWorkflow


class NodeRun:
    """Implements `node_kinds.NodeHost` and `node_kinds.Evaluator` for one execution."""

    def __init__(self, graph: GraphWorkflow, spec: NodeBase, node: NodeState) -> None:
        self.graph = graph
        self.spec = spec
        self.node = node
        self._variables: dict[str, Any] = {}
        # Set when a continued run resumes a node that was already waiting for a person.
        self.resumed: OpenQuestion | None = None

    async def run(self) -> str | None:
        """Run the node; the error it failed with, or None. Raises only CancelledError."""
        graph, spec, node = self.graph, self.spec, self.node
        try:
            if self.resumed is not None:
                prepared: dict[str, Any] = {"question": self.resumed.question}
            else:
                node.runs += 1
                prepared = await self._prepare()
                graph.set_node(node, NodeStatus.INITIALIZED)
                graph.set_node(node, NodeStatus.EXECUTING)
            value, metadata = await spec.execute(self, prepared)
            if graph.enforce:
                self._check_output_size(value)
            if isinstance(spec, TransformNode):
                graph.state.variables["vars"] = {**graph.state.variables["vars"], **value}
        except NodeFailed as exc:
            return self._failed(str(exc))
        except asyncio.CancelledError:
            if node.status in (NodeStatus.INITIALIZING, NodeStatus.EXECUTING):
                if not graph.continuing:  # a continued run picks the wait up again
                    graph.set_node(node, NodeStatus.CANCELLED)
            raise
        except Exception as exc:  # noqa: BLE001 - a bug fails the node, never hangs the run
            return self._failed(f"internal error: {type(exc).__name__}: {str(exc)[:300]}")
        metadata.update({"status": "completed", "runs": node.runs})
        graph.state.variables[spec.id] = {"value": value, "metadata": metadata}
        graph.set_node(node, NodeStatus.COMPLETED)
        return None

    async def _prepare(self) -> dict[str, Any]:
        graph, spec = self.graph, self.spec
        graph.set_node(self.node, NodeStatus.INITIALIZING)
        if graph.enforce:
            sources = [source for _, source in spec.expressions()]
            cost = graph.budget.cost(sources)
            problem = graph.budget.problem(sources, cost)
            if problem is not None:
                raise NodeFailed(problem)
            # Every node evaluates in the workflow; those that run no activity (and those
            # whose expressions fail before theirs) count as steps of the activation.
            await graph.budget.turn(cost, steps=1 if spec.in_workflow else 0)
        self._variables = graph.variables()
        try:
            return spec.prepare(self)
        except ExpressionError as exc:
            raise NodeFailed(f"expression {exc}") from None

    def _failed(self, error: str) -> str:
        graph, node = self.graph, self.node
        if node.status is NodeStatus.INITIALIZING:
            graph.budget.steps += 1  # failed before any activity: it ran in the workflow
        graph.state.variables[self.spec.id] = {
            "value": None,
            "metadata": {"status": "failed", "error": error, "runs": node.runs},
        }
        graph.set_node(node, NodeStatus.FAILED, error)
        return error

    def _check_output_size(self, value: Any) -> None:
        """An output over its bound, or one that would take the run's variables over theirs,
        fails the node (Temporal would refuse the run's state past 2 MB, on every retry)."""
        graph, node_id = self.graph, self.spec.id
        limits = graph.limits
        size, weight = read_weight(value)
        if size > limits.max_node_output_bytes:
            raise NodeFailed(f"output is {size} bytes; the limit is {limits.max_node_output_bytes}")
        sizes = {**graph.output_bytes, node_id: size}
        weights = {node_id: weight}
        if isinstance(self.spec, TransformNode):
            merged = {**graph.state.variables["vars"], **value}
            sizes["vars"], weights["vars"] = read_weight(merged)
        total = sum(sizes.values())
        if total > limits.max_variables_bytes:
            raise NodeFailed(
                f"the run's variables would be {total} bytes; the limit is "
                f"{limits.max_variables_bytes}"
            )
        graph.output_bytes = sizes
        graph.budget.weights.update(weights)

    # ---- Evaluator ------------------------------------------------------------------------

    def evaluate(self, source: str) -> Any:
        return evaluate(source, self._variables, self.graph.expression_limits)

    def render(self, template: str) -> str:
        return render(template, self._variables, self.graph.expression_limits)

    # ---- NodeHost -------------------------------------------------------------------------

    async def activity(
        self, name: str, arg: Any, result_type: type, defaults: workflow.ActivityConfig
    ) -> Any:
        spec, node = self.spec, self.node
        config: workflow.ActivityConfig = {**defaults, "summary": spec.id}
        if spec.retry is not None:
            retry = spec.retry
            config["retry_policy"] = timeouts.retry_policy(
                retry.max_attempts, retry.initial_interval, retry.backoff
            )
        if spec.timeout_s:
            config["start_to_close_timeout"] = timedelta(seconds=spec.timeout_s)
        execution = spec.execution or self.graph.inp.spec.execution or "remote"
        try:
            out = await execute(
                name, arg, execution=execution, config=config, result_type=result_type
            )
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from None
            node.attempts = _attempts(exc)
            raise NodeFailed(failure_message(exc)) from None
        node.attempts = getattr(out, "attempt", 1)
        return out

    async def ask(self, question: str, wait: timedelta | None) -> str:
        graph, node_id = self.graph, self.spec.id
        if self.resumed is not None:
            asked = self.resumed
        else:
            if not graph.v2:  # runs before v2 asked one question at a time
                await workflow.wait_condition(lambda: not graph.state.questions)
            now = workflow.now()
            limit = wait or timedelta(seconds=graph.inp.input_timeout_s)
            asked = OpenQuestion(
                node_id=node_id, question=question, asked_at=now, deadline=now + limit
            )
            graph.open_question(asked)
        remaining = asked.deadline - workflow.now()
        try:
            await workflow.wait_condition(
                lambda: node_id in graph.answers, timeout=max(remaining, timedelta(seconds=1))
            )
        except TimeoutError:
            waited = int((asked.deadline - asked.asked_at).total_seconds())
            raise NodeFailed(
                f"no input arrived for node {node_id!r} within {waited} seconds; it stopped waiting"
            ) from None
        finally:
            if not graph.continuing:  # else the next run asks on
                graph.close_question(node_id)
        return graph.answers.pop(node_id)

    async def approve(self, tool: str, arguments: dict[str, Any]) -> None:
        """Wait for a person's decision when the tool's policy asks for one (the run lists its
        tools once). A denial, or no decision in time, fails the node: the call never runs."""
        graph = self.graph
        if not needs_approval(await graph.tool_catalog(), tool):
            return
        request = graph._request_approval(tool, arguments, node_id=self.spec.id)
        limit = timedelta(seconds=graph.inp.input_timeout_s)
        try:
            await workflow.wait_condition(
                lambda: graph._approval_decided(request.id), timeout=limit
            )
        except (TimeoutError, asyncio.CancelledError) as exc:
            graph.expire_approval(request)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise NodeFailed(
                f"no decision on the call of {tool} arrived within "
                f"{int(limit.total_seconds())} seconds; it did not run"
            ) from None
        if request.status is ApprovalStatus.DENIED:
            reason = f": {request.reason}" if request.reason else ""
            raise NodeFailed(f"the call of {tool} was denied by a person{reason}; it did not run")

    async def agent(self, query: str, agent: str | None = None) -> Output:
        graph, spec, node = self.graph, self.spec, self.node
        child_id = f"{graph.state.run_id}-{spec.id}-{node.runs}"
        tenant = graph.state.tenant
        attributes: list[SearchAttributePair[Any]] = [
            SearchAttributePair(RUN_KIND, "agent"),
            SearchAttributePair(RUN_STATUS, "pending"),
            SearchAttributePair(RUN_STAGE, "intent"),
        ]
        if tenant is not None:
            attributes.append(SearchAttributePair(TENANT, tenant))
        # The definition the gateway pinned in this run's input (none in runs from before
        # agent definitions: their children run as they always did).
        definition = graph.inp.agents.get(agent or DEFAULT_AGENT)
        if agent is not None and definition is None:
            raise NodeFailed(f"agent {agent!r} was not pinned in the run's input")
        settings = graph.inp.run_settings()
        if definition is not None:
            attributes.append(SearchAttributePair(RUN_AGENT, definition.name))
            settings = settings.model_copy(update=definition.run_overrides())
        retry = spec.retry
        handle = await workflow.start_child_workflow(
            "AgentWorkflow",
            AgentInput(
                query=query,
                tenant=tenant,
                agent=definition,
                baseline=CURRENT_BASELINE,  # `attributes` below
                **settings.model_dump(),
            ),
            id=child_id,
            task_timeout=workflow.info().task_timeout,
            result_type=AgentState,
            search_attributes=TypedSearchAttributes(attributes),
            retry_policy=(
                timeouts.retry_policy(retry.max_attempts, retry.initial_interval, retry.backoff)
                if retry is not None
                else None
            ),
        )
        node.child_run_id = child_id
        graph.log_event(
            "node",
            f"{spec.id} started agent run {child_id}",
            node_id=spec.id,
            status="child_started",
            child_run_id=child_id,
        )
        try:
            result: AgentState = await handle
        except ChildWorkflowError as exc:
            raise NodeFailed(f"agent run {child_id} failed: {failure_message(exc)}") from None
        self.add_usage(result.usage if result.usage else Usage())
        return {"answer": result.answer, "status": result.status.value}, {"run_id": child_id}

    def add_usage(self, usage: Usage) -> None:
        self.graph.state.usage.add(usage)
        if self.spec.kind == "llm":
            self.node.usage = usage


def _attempts(exc: ActivityError) -> int:
    # Our activities put the attempt in the failure's details (activities.base.call).
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        detail = cause.details[0]
        attempt = detail.get("attempt") if isinstance(detail, dict) else None
        if isinstance(attempt, int):
            return attempt
    return 1
