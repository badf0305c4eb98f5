"""The graph scheduler against a simple reference interpreter, over random graphs and cycles.

The reference recomputes everything from scratch after each decision (a fixpoint over all
nodes, back edges from a recursive depth-first walk); the scheduler settles only what an edge
touches, iteratively. Driven in lockstep by the same choices, they must agree at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from workflows.scheduler import (
    Edge,
    MaxStepsReached,
    Scheduler,
    UnhandledFailure,
    build_plan,
)

ONS: tuple[Literal["success", "failure", "always"], ...] = ("success", "failure", "always")


@dataclass
class Reference:
    """The semantics spelled out naively."""

    nodes: list[str]
    edges: list[Edge]
    entry: str
    back: set[int] = field(default_factory=set)
    resolved: dict[int, bool | None] = field(default_factory=dict)
    phase: dict[str, str] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    steps: int = 0

    def __post_init__(self) -> None:
        on_stack: set[str] = set()
        seen: set[str] = set()

        def walk(node: str) -> None:
            seen.add(node)
            on_stack.add(node)
            for i, edge in enumerate(self.edges):
                if edge.source != node:
                    continue
                if edge.target in on_stack:
                    self.back.add(i)
                elif edge.target not in seen:
                    walk(edge.target)
            on_stack.discard(node)

        walk(self.entry)
        self.resolved = {i: None for i in range(len(self.edges)) if i not in self.back}
        self.phase = dict.fromkeys(self.nodes, "pending")
        self.phase[self.entry] = "ready"
        self.ready = {self.entry}

    def take(self, node: str) -> None:
        self.ready.discard(node)
        self.phase[node] = "running"
        self.steps += 1

    def finish(self, node: str, taken: set[int]) -> None:
        self.phase[node] = "done"
        for i, edge in enumerate(self.edges):
            if edge.source == node and i not in self.back:
                self.resolved[i] = i in taken
                self.fixpoint()
        for i, edge in enumerate(self.edges):
            if edge.source == node and i in self.back and i in taken:
                self.loop_back(edge.target)

    def loop_back(self, target: str) -> None:
        region = {target}
        changed = True
        while changed:
            changed = False
            for i, edge in enumerate(self.edges):
                if i not in self.back and edge.source in region and edge.target not in region:
                    region.add(edge.target)
                    changed = True
        for i, edge in enumerate(self.edges):
            if i not in self.back and edge.source in region:
                self.resolved[i] = None
        for node in region:
            if self.phase[node] == "done":
                self.phase[node] = "pending"
        if self.phase[target] == "pending":
            self.phase[target] = "ready"
            self.ready.add(target)

    def fixpoint(self) -> None:
        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                if node == self.entry or self.phase[node] != "pending":
                    continue
                incoming = [
                    self.resolved[i]
                    for i, e in enumerate(self.edges)
                    if e.target == node and i not in self.back
                ]
                if any(v is None for v in incoming):
                    continue
                if any(incoming):
                    self.phase[node] = "ready"
                    self.ready.add(node)
                else:
                    self.phase[node] = "done"
                    for i, e in enumerate(self.edges):
                        if e.source == node and i not in self.back:
                            self.resolved[i] = False
                changed = True


@st.composite
def graphs(draw: st.DrawFn, cycles: bool = True) -> tuple[list[str], list[Edge]]:
    size = draw(st.integers(1, 10))
    nodes = [f"n{k}" for k in range(size)]
    edges: list[Edge] = []
    for k in range(1, size):  # every node reachable from the entry n0
        parent = draw(st.integers(0, k - 1))
        edges.append(Edge(nodes[parent], nodes[k], draw(st.sampled_from(ONS))))
    for _ in range(draw(st.integers(0, size * 2))):
        a, b = draw(st.integers(0, size - 1)), draw(st.integers(0, size - 1))
        if not cycles and a >= b:
            continue
        edges.append(Edge(nodes[a], nodes[b], draw(st.sampled_from(ONS))))
    order = draw(st.permutations(range(len(edges))))
    return nodes, [edges[i] for i in order]


def run_lockstep(
    data: st.DataObject, nodes: list[str], edges: list[Edge], max_steps: int
) -> tuple[Scheduler, str]:
    """Returns the scheduler and how the run ended: done, max_steps or failed."""
    note(f"edges: {edges}")
    plan = build_plan(nodes, "n0", edges)
    scheduler = Scheduler(plan)
    scheduler.start()
    reference = Reference(nodes, edges, "n0")
    assert set(plan.back_edges) == reference.back
    running: list[str] = []
    while True:
        assert set(scheduler.ready) == reference.ready
        assert scheduler.state.phases == reference.phase
        edge_states = {
            i: {"pending": None, "taken": True, "not_taken": False}[s]
            for i, s in enumerate(scheduler.state.edges)
            if i not in plan.back_edges
        }
        assert edge_states == reference.resolved
        assert len(scheduler.ready) == len(set(scheduler.ready))
        if scheduler.done:
            assert not running
            return scheduler, "done"
        # Start a ready node, or finish a running one: the same choice for both.
        if scheduler.ready and (not running or data.draw(st.booleans())):
            node = data.draw(st.sampled_from(sorted(scheduler.ready)))
            try:
                scheduler.take(max_steps, node)
            except MaxStepsReached:
                assert reference.steps + 1 > max_steps
                return scheduler, "max_steps"
            reference.take(node)
            running.append(node)
            continue
        node = running.pop(data.draw(st.integers(0, len(running) - 1)))
        outcome = data.draw(st.sampled_from(["success", "failure"]))
        try:
            candidates = scheduler.candidates(node, outcome)
        except UnhandledFailure:
            assert not any(e.source == node and e.on in ("failure", "always") for e in edges)
            return scheduler, "failed"
        taken = {i for i in candidates if data.draw(st.booleans())}
        scheduler.finish(node, taken)
        reference.finish(node, taken)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(cycles=True), data=st.data())
def test_the_scheduler_agrees_with_the_reference_over_random_graphs_and_cycles(
    graph: tuple[list[str], list[Edge]], data: st.DataObject
) -> None:
    nodes, edges = graph
    run_lockstep(data, nodes, edges, max_steps=40)


@settings(max_examples=500, deadline=None)
@given(graph=graphs(cycles=False), data=st.data())
def test_in_a_dag_every_node_ends_run_or_skipped_exactly_once(
    graph: tuple[list[str], list[Edge]], data: st.DataObject
) -> None:
    nodes, edges = graph
    scheduler, ended = run_lockstep(data, nodes, edges, max_steps=10_000)
    if ended == "failed":  # a failure no edge handles ends the run at once
        return
    assert ended == "done" and scheduler.done
    assert set(scheduler.state.phases.values()) == {"done"}
    assert scheduler.state.steps <= len(nodes)


def test_a_skipped_chain_of_20000_nodes_needs_no_recursion() -> None:
    nodes = ["entry", "gate"] + [f"n{k}" for k in range(20_000)]
    edges = [Edge("entry", "gate"), Edge("entry", "n0")]
    edges += [Edge(f"n{k}", f"n{k + 1}") for k in range(19_999)]
    edges.append(Edge("gate", "n0"))  # n0 joins entry's branch and gate's
    scheduler = Scheduler(build_plan(nodes, "entry", edges))
    scheduler.start()
    scheduler.take(None)
    changes = scheduler.finish("entry", {0})  # gate taken, entry -> n0 not
    assert changes == []
    scheduler.take(None)
    changes = scheduler.finish("gate", set())  # the whole chain is skipped
    assert len(changes) == 20_000 and scheduler.done


def test_ready_nodes_keep_their_order_first_in_first_out() -> None:
    edges = [Edge("a", "c"), Edge("a", "b"), Edge("a", "d")]
    scheduler = Scheduler(build_plan(["a", "b", "c", "d"], "a", edges))
    scheduler.start()
    scheduler.take(None)
    scheduler.finish("a", {0, 1, 2})
    assert scheduler.ready == ["c", "b", "d"]


def test_max_steps_stops_before_the_step_that_exceeds_it() -> None:
    edges = [Edge("a", "b"), Edge("b", "a")]
    scheduler = Scheduler(build_plan(["a", "b"], "a", edges))
    scheduler.start()
    for node in ("a", "b", "a"):
        assert scheduler.take(3) == node
        scheduler.finish(node, {0, 1})
    with pytest.raises(MaxStepsReached):
        scheduler.take(3)
