"""Which edges out of a finished graph node are taken: their `on` matches the node's outcome and
their `when` (CEL) holds. Evaluated by the workflow, within the run's read budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workflows.expressions import ExpressionError, evaluate
from workflows.run_control import RunFailure
from workflows.scheduler import UnhandledFailure

if TYPE_CHECKING:
    from workflows.graph import GraphWorkflow


async def taken_edges(graph: GraphWorkflow, node_id: str, error: str | None) -> set[int]:
    """The indexes of the taken edges. A failure that no edge handles, a condition that cannot
    be evaluated or that would read too much fails the run (RunFailure)."""
    scheduler, budget, limits = graph.scheduler, graph.budget, graph.limits
    try:
        candidates = scheduler.candidates(node_id, "failure" if error else "success")
    except UnhandledFailure:
        raise RunFailure(f"node {node_id!r} failed: {error}") from None
    edges = graph.inp.spec.edges
    out = scheduler.plan.out_edges[node_id]
    conditions = [w for i in out if (w := edges[i].when) is not None]
    if graph.enforce and budget.cost(conditions) > limits.max_node_read_bytes:
        # The node's edges are part of its work: bounded together, like its expressions.
        raise RunFailure(
            f"the conditions of the edges out of {node_id!r} would read "
            f"{budget.cost(conditions)} bytes of variables; the limit is "
            f"{limits.max_node_read_bytes}"
        )
    variables, taken = graph.variables(), set()
    for i in candidates:
        edge = edges[i]
        if edge.when is not None:
            if graph.enforce:
                cost = budget.cost([edge.when])
                problem = budget.problem([edge.when], cost)
                if problem is not None:
                    raise RunFailure(f"edge {edge.source} -> {edge.target}: when {problem}")
                await budget.turn(cost, steps=0)  # many edges are many reads
            try:
                if not evaluate(edge.when, variables, graph.expression_limits):
                    continue
            except ExpressionError as exc:
                raise RunFailure(f"edge {edge.source} -> {edge.target}: when {exc}") from None
        taken.add(i)
    return taken
