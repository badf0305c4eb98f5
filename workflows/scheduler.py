"""Which graph nodes run next: a pure, iterative scheduler (no Temporal, no expressions).

Semantics (what GraphWorkflow promises its users):
- The entry node runs first. When a node finishes, the workflow decides which of its outgoing
  edges are *taken* (their `on` matches the outcome and their `when` holds) and hands the
  decisions to :meth:`Scheduler.finish`.
- A node becomes ready once every forward edge into it is resolved and at least one was taken
  (branches that both hold run in parallel and join where they meet). A node whose incoming
  edges were all left untaken is skipped, and so is what only it leads to.
- A taken back edge (one that closes a cycle) makes its target ready again and resets the part
  of the graph after it, so that it can run again; `max_steps` bounds the node executions.
- The run is done when nothing runs and nothing is ready.

Everything is a loop over explicit stacks and queues: a chain of 10,000 skipped nodes costs no
recursion. The state is plain data (:class:`SchedulerState`), so it travels through
continue-as-new; ready nodes keep their first-in, first-out order, which is part of the command
sequence of a run (and so of its replay).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

EdgeState = Literal["pending", "taken", "not_taken"]
# pending: not yet started in this pass; ready: waiting for a slot; running: started and not
# finished; done: completed, failed or skipped in this pass.
NodePhase = Literal["pending", "ready", "running", "done"]
Outcome = Literal["success", "failure"]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    on: Literal["success", "failure", "always"] = "success"


@dataclass(frozen=True)
class GraphPlan:
    """The graph's shape, computed once: edges by node, back edges, forward predecessors."""

    node_ids: tuple[str, ...]
    entry: str
    edges: tuple[Edge, ...]
    out_edges: dict[str, tuple[int, ...]]
    forward_in: dict[str, tuple[int, ...]]
    back_edges: frozenset[int]
    sinks: frozenset[str]

    @property
    def has_cycle(self) -> bool:
        return bool(self.back_edges)


def build_plan(node_ids: Sequence[str], entry: str, edges: Sequence[Edge]) -> GraphPlan:
    """Back edges are those that close a cycle in a depth-first walk from the entry (edge
    order decides which edge of a cycle is its back edge)."""
    out: dict[str, list[int]] = {n: [] for n in node_ids}
    for i, edge in enumerate(edges):
        out[edge.source].append(i)
    back: set[int] = set()
    if entry in out:
        state: dict[str, int] = {entry: 1}  # 1 on the stack, 2 done
        stack: list[tuple[str, Iterator[int]]] = [(entry, iter(out[entry]))]
        while stack:
            node, pending = stack[-1]
            for i in pending:
                target = edges[i].target
                seen = state.get(target)
                if seen == 1:
                    back.add(i)
                elif seen is None:
                    state[target] = 1
                    stack.append((target, iter(out[target])))
                    break
            else:
                state[node] = 2
                stack.pop()
    forward_in: dict[str, list[int]] = {n: [] for n in node_ids}
    for i, edge in enumerate(edges):
        if i not in back:
            forward_in[edge.target].append(i)
    return GraphPlan(
        node_ids=tuple(node_ids),
        entry=entry,
        edges=tuple(edges),
        out_edges={n: tuple(v) for n, v in out.items()},
        forward_in={n: tuple(v) for n, v in forward_in.items()},
        back_edges=frozenset(back),
        sinks=frozenset(n for n in node_ids if not out[n]),
    )


class SchedulerState(BaseModel):
    """What the scheduler knows; carried through continue-as-new."""

    edges: list[EdgeState]
    phases: dict[str, NodePhase]
    ready: list[str] = Field(default_factory=list)
    steps: int = 0


class MaxStepsReached(Exception):
    """Starting the next node would exceed the run's `max_steps`."""


class UnhandledFailure(Exception):
    """A node failed and none of its edges handles failure: the run fails."""


@dataclass(frozen=True)
class Change:
    """Something the scheduler did that users see: a node skipped, reset for another pass of a
    loop, or made ready again by a back edge."""

    kind: Literal["skipped", "reset", "looped"]
    node_id: str


class Scheduler:
    def __init__(
        self, plan: GraphPlan, state: SchedulerState | None = None, legacy_order: bool = False
    ) -> None:
        self.plan = plan
        # Runs started before the v2 engine resolved a node's edges in plain edge order: a back
        # edge listed before a forward one could leave the forward edge's target skipped for
        # good. They replay as they ran.
        self.legacy_order = legacy_order
        self.state = state or SchedulerState(
            edges=["pending"] * len(plan.edges),
            phases=dict.fromkeys(plan.node_ids, "pending"),
        )
        self._changes: list[Change] = []

    # ---- reading ------------------------------------------------------------------------------

    @property
    def ready(self) -> list[str]:
        return self.state.ready

    @property
    def running(self) -> list[str]:
        return [n for n, p in self.state.phases.items() if p == "running"]

    @property
    def done(self) -> bool:
        """Nothing runs and nothing is ready: the run is over."""
        return not self.state.ready and "running" not in self.state.phases.values()

    def candidates(self, node_id: str, outcome: Outcome) -> list[int]:
        """The out-edges whose `on` matches the outcome, in order; their `when` is the caller's
        to evaluate. A failure that no edge handles raises UnhandledFailure."""
        out = self.plan.out_edges[node_id]
        matching = [i for i in out if self.plan.edges[i].on in (outcome, "always")]
        if outcome == "failure" and not matching:
            raise UnhandledFailure(node_id)
        return matching

    # ---- changing -----------------------------------------------------------------------------

    def start(self) -> None:
        """Make the entry ready (once, at the start of a run)."""
        self.state.phases[self.plan.entry] = "ready"
        self.state.ready.append(self.plan.entry)

    def take(self, max_steps: int | None, node_id: str | None = None) -> str:
        """Start a ready node (the first in, first out, unless named) and count the step."""
        node_id = node_id if node_id is not None else self.state.ready[0]
        if max_steps is not None and self.state.steps + 1 > max_steps:
            raise MaxStepsReached(
                f"the graph executed max_steps={max_steps} nodes without finishing "
                f"(next was {node_id!r})"
            )
        self.state.ready.remove(node_id)
        self.state.steps += 1
        self.state.phases[node_id] = "running"
        return node_id

    def finish(self, node_id: str, taken: Collection[int]) -> list[Change]:
        """The node ended; `taken` holds the out-edges that were taken (candidates whose `when`
        held); its other out-edges are left untaken. Forward edges are resolved first, in edge
        order, then taken back edges restart their loops (so a restart also resets what this
        node just decided inside the loop). Returns what changed besides readiness."""
        self._changes = []
        self.state.phases[node_id] = "done"
        back = self.plan.back_edges
        out = self.plan.out_edges[node_id]
        if not self.legacy_order:
            out = tuple(i for i in out if i not in back) + tuple(i for i in out if i in back)
        for i in out:
            edge = self.plan.edges[i]
            if i in back:
                if i in taken:
                    self._loop_back(edge.target)
                continue
            self.state.edges[i] = "taken" if i in taken else "not_taken"
            self._settle(edge.target)
        return self._changes

    def _settle(self, start: str) -> None:
        """Once every forward edge into a node is resolved, make it ready or skip it; a skip
        resolves the node's own edges as untaken, depth first, in edge order."""
        stack: list[Iterator[int]] = []
        node: str | None = start
        while True:
            if node is not None:
                skipped = self._settle_one(node)
                if skipped:
                    forward = (
                        i for i in self.plan.out_edges[node] if i not in self.plan.back_edges
                    )
                    stack.append(forward)
            node = None
            while stack and node is None:
                i = next(stack[-1], None)
                if i is None:
                    stack.pop()
                else:
                    self.state.edges[i] = "not_taken"
                    node = self.plan.edges[i].target
            if node is None:
                return

    def _settle_one(self, node_id: str) -> bool:
        """Ready or skip one node if its incoming edges are all resolved; True when skipped."""
        incoming = self.plan.forward_in[node_id]
        edges = self.state.edges
        if any(edges[i] == "pending" for i in incoming):
            return False
        if self.state.phases[node_id] != "pending":
            return False
        if any(edges[i] == "taken" for i in incoming):
            self.state.phases[node_id] = "ready"
            self.state.ready.append(node_id)
            return False
        self.state.phases[node_id] = "done"
        self._changes.append(Change("skipped", node_id))
        return True

    def _loop_back(self, target: str) -> None:
        """Run `target` again, and reset what comes after it so that it can run again too.
        Nodes already running or ready are left as they are."""
        region = {target}
        queue = [target]
        while queue:
            for i in self.plan.out_edges[queue.pop()]:
                if i in self.plan.back_edges:
                    continue
                self.state.edges[i] = "pending"
                nxt = self.plan.edges[i].target
                if nxt not in region:
                    region.add(nxt)
                    queue.append(nxt)
        phases = self.state.phases
        for node_id in sorted(region):
            if phases[node_id] == "done":
                phases[node_id] = "pending"
                self._changes.append(Change("reset", node_id))
        self._changes.append(Change("looped", target))
        if phases[target] == "pending":
            phases[target] = "ready"
            self.state.ready.append(target)
