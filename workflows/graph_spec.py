"""GraphSpec, the user-defined workflow graph, and `validate()`: pure, no I/O.

The gateway validates a spec before anything starts and the GraphWorkflow interprets the
validated spec (pinned in the run's input). Expressions (edge `when`, `condition`, `transform`,
`{{ ... }}` templates, tool arguments) are CEL, compiled here with `common-expression-language`
(Rust-backed: ~25 µs a compile, precise syntax errors, and it lists an expression's variables so
unknown names are caught before the run).

Names an expression may use: `input` (the run's input), `vars` (what `transform` nodes set) and
the id of any node (its output `{value, metadata}`, or null while it has not run).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import cel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflows.limits import (
    Limits,
    ceiling,
    expression_problem,
    json_problems,
    template_expressions,
    template_problem,
)

NODE_TYPES = ("llm", "tool", "condition", "transform", "human_input", "agent")
# What each node type needs in its `config`, and which of those fields are templates.
REQUIRED_CONFIG: dict[str, tuple[str, ...]] = {
    "llm": ("prompt",),
    "tool": ("tool",),
    "condition": ("expression",),
    "transform": ("set",),
    "human_input": ("question",),
    "agent": ("query",),
}
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "llm": ("prompt",),
    "human_input": ("question",),
    "agent": ("query",),
}
BUILTIN_NAMES = frozenset({"input", "vars"})
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CEL_RESERVED = frozenset(
    """true false null in as break const continue else for function if import let loop package
    namespace return var void while input vars""".split()
)
# Structural ceilings, so that even decoding a spec is bounded; the limits in force are lower.
MAX_NODES = ceiling("max_graph_nodes")
MAX_EDGES = ceiling("max_graph_edges")
# How deep a spec's JSON may nest at all (config values included).
MAX_SPEC_DEPTH = 16


class RetrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_interval: float = Field(default=1.0, gt=0, le=3600, description="seconds")
    backoff: float = Field(default=2.0, ge=1, le=10)


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetrySpec | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class EdgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str
    target: str
    when: str | None = Field(default=None, description="CEL; the edge is taken when it holds")
    on: Literal["success", "failure", "always"] = Field(
        default="success",
        description="Taken after the source succeeds (default), fails for good, or either way. "
        "A node that fails with no `failure`/`always` edge fails the run.",
    )


class GraphSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    version: str = "1"
    description: str = ""
    entry: str
    max_steps: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Bound on node executions (needed for cycles)"
    )
    nodes: list[NodeSpec] = Field(max_length=MAX_NODES)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=MAX_EDGES)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


@dataclass
class GraphPlan:
    """What the interpreter needs, computed once: edges by node, back edges, forward preds."""

    node_ids: list[str]
    out_edges: dict[str, list[int]]
    forward_in: dict[str, list[int]]
    back_edges: frozenset[int]
    sinks: frozenset[str]
    has_cycle: bool


@dataclass
class Validation:
    spec: GraphSpec | None
    problems: list[Problem] = field(default_factory=list)
    plan: GraphPlan | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(data: Any, tools: Collection[str] | None, limits: Limits | None = None) -> Validation:
    """Every problem of a graph definition at once, each with a JSON path and a message.

    `tools` None skips the tool check (the worker re-validates a pinned spec without knowing
    the gateway's registry). Limits are checked before any expression reaches the CEL engine.
    """
    limits = limits or Limits()
    raw = data.model_dump(exclude_defaults=True) if isinstance(data, GraphSpec) else data
    oversized = json_problems(
        raw, max_depth=MAX_SPEC_DEPTH, max_bytes=limits.max_graph_bytes, path="graph"
    )
    if oversized:
        return Validation(None, [Problem(path, message) for path, message in oversized])
    try:
        spec = data if isinstance(data, GraphSpec) else GraphSpec.model_validate(data)
    except ValidationError as exc:
        return Validation(
            None,
            [
                Problem(_path(e["loc"]), e["msg"])
                for e in exc.errors(include_url=False, include_context=False)
            ],
        )
    problems: list[Problem] = []
    if len(spec.nodes) > limits.max_graph_nodes:
        problems.append(
            Problem("nodes", f"{len(spec.nodes)} nodes; the limit is {limits.max_graph_nodes}")
        )
    if len(spec.edges) > limits.max_graph_edges:
        problems.append(
            Problem("edges", f"{len(spec.edges)} edges; the limit is {limits.max_graph_edges}")
        )
    if spec.max_steps is not None and spec.max_steps > limits.max_run_steps:
        problems.append(
            Problem(
                "max_steps",
                f"max_steps is {spec.max_steps}; the limit is {limits.max_run_steps} node "
                "executions per run",
            )
        )
    if problems:
        return Validation(spec, problems)
    ids = _check_nodes(spec, tools, limits, problems)
    _check_edges(spec, ids, problems)
    if spec.entry not in ids:
        problems.append(
            Problem("entry", f"entry {spec.entry!r} is not a node id")
            if spec.entry
            else Problem("entry", "entry is missing")
        )
    names = frozenset(BUILTIN_NAMES | ids.keys())
    for path, source in _expressions(spec):
        problems.extend(_check_expression(path, source, names, limits))
    plan = None
    if spec.entry in ids and not any(p.path.startswith("edges") for p in problems):
        plan = build_plan(spec)
        _check_structure(spec, plan, problems)
    return Validation(spec, problems, plan if not problems else None)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "graph"


def _check_nodes(
    spec: GraphSpec, tools: Collection[str] | None, limits: Limits, problems: list[Problem]
) -> dict[str, int]:
    ids: dict[str, int] = {}
    for i, node in enumerate(spec.nodes):
        where = f"nodes[{i}]"
        if not node.id:
            problems.append(Problem(f"{where}.id", "node id is missing"))
        elif not _ID.match(node.id) or node.id in _CEL_RESERVED:
            problems.append(
                Problem(
                    f"{where}.id",
                    f"node id {node.id!r} must be a name (letters, digits, _; not a reserved "
                    "word) so that expressions can refer to it",
                )
            )
        elif node.id in ids:
            problems.append(
                Problem(
                    f"{where}.id", f"duplicate node id {node.id!r} (also nodes[{ids[node.id]}])"
                )
            )
        else:
            ids[node.id] = i
        if node.type not in NODE_TYPES:
            problems.append(
                Problem(
                    f"{where}.type",
                    f"unknown node type {node.type!r}; known: {', '.join(NODE_TYPES)}",
                )
            )
            continue
        for key in REQUIRED_CONFIG[node.type]:
            if key not in node.config:
                problems.append(
                    Problem(f"{where}.config.{key}", f"a {node.type} node needs config.{key}")
                )
        _check_config_types(node, where, tools, problems)
        _check_node_size(node, where, limits, problems)
    return ids


def _check_node_size(node: NodeSpec, where: str, limits: Limits, problems: list[Problem]) -> None:
    config = node.config
    count = 0
    for key in TEMPLATE_FIELDS.get(node.type, ()):
        if isinstance(config.get(key), str):
            problem = template_problem(config[key], limits)
            if problem is not None:
                problems.append(Problem(f"{where}.config.{key}", problem))
                return
            count += sum(1 for _ in template_expressions(config[key]))
    for key in ("set", "args"):
        if isinstance(config.get(key), dict):
            count += len(config[key])
    if count > limits.max_node_expressions:
        problems.append(
            Problem(
                f"{where}.config",
                f"the node has {count} expressions; the limit is {limits.max_node_expressions}",
            )
        )


def _check_config_types(
    node: NodeSpec, where: str, tools: Collection[str] | None, problems: list[Problem]
) -> None:
    config = node.config
    for key in (*TEMPLATE_FIELDS.get(node.type, ()), "expression"):
        if key in config and not isinstance(config[key], str):
            problems.append(Problem(f"{where}.config.{key}", f"config.{key} must be a string"))
    for key in ("set", "args"):
        if node.type in ("transform", "tool") and isinstance(config.get(key), dict):
            for name, source in config[key].items():
                if not _ID.match(str(name)):
                    problems.append(
                        Problem(
                            f"{where}.config.{key}",
                            f"{name!r} is not a name (letters, digits, _; at most 64)",
                        )
                    )
                elif not isinstance(source, str):
                    problems.append(
                        Problem(
                            f"{where}.config.{key}.{name}",
                            f"must be a CEL expression as a string (write {json.dumps(source)!r}"
                            " for that value)",
                        )
                    )
    if node.type == "tool" and "tool" in config and tools is not None:
        if config["tool"] not in tools:
            problems.append(
                Problem(
                    f"{where}.config.tool",
                    f"unknown tool {config['tool']!r}; known: {', '.join(sorted(tools))}",
                )
            )
        if not isinstance(config.get("args", {}), dict):
            problems.append(Problem(f"{where}.config.args", "config.args must be an object"))
    if node.type == "transform" and "set" in config:
        if not isinstance(config["set"], dict) or not config["set"]:
            problems.append(
                Problem(f"{where}.config.set", "config.set must map names to expressions")
            )
    if node.retry is not None and node.type not in ("llm", "tool", "agent"):
        problems.append(
            Problem(f"{where}.retry", f"a {node.type} node runs no activity; retry has no effect")
        )


def _check_edges(spec: GraphSpec, ids: dict[str, int], problems: list[Problem]) -> None:
    for i, edge in enumerate(spec.edges):
        for end in ("source", "target"):
            name = getattr(edge, end)
            if name not in ids:
                problems.append(
                    Problem(f"edges[{i}].{end}", f"edge {end} {name!r} is not a node id")
                )


def _expressions(spec: GraphSpec) -> Iterator[tuple[str, str]]:
    """(path, CEL source) of every expression in the spec."""
    for i, edge in enumerate(spec.edges):
        if edge.when is not None:
            yield f"edges[{i}].when", edge.when
    for i, node in enumerate(spec.nodes):
        config = node.config
        where = f"nodes[{i}].config"
        if node.type == "condition" and isinstance(config.get("expression"), str):
            yield f"{where}.expression", config["expression"]
        for key in ("set", "args"):
            if node.type in ("transform", "tool") and isinstance(config.get(key), dict):
                for name, source in config[key].items():
                    if isinstance(source, str):
                        yield f"{where}.{key}.{name}", source
        for key in TEMPLATE_FIELDS.get(node.type, ()):
            if isinstance(config.get(key), str):
                for j, source in enumerate(template_expressions(config[key])):
                    yield f"{where}.{key}{{{{{j}}}}}", source


@lru_cache(maxsize=4096)
def compiled(source: str) -> Any:
    """The CEL program of an expression that passed `expression_problem` (cached)."""
    return cel.compile(source)


def _check_expression(
    path: str, source: str, names: frozenset[str], limits: Limits
) -> list[Problem]:
    if not source.strip():
        return [Problem(path, "expression is empty")]
    problem = expression_problem(source, limits, names)
    if problem is not None:
        return [Problem(path, problem)]
    try:
        program = compiled(source)
    except (ValueError, RuntimeError) as exc:
        message = str(exc).replace("\n", " ")
        return [Problem(path, f"expression does not compile: {message}")]
    unknown = sorted(v for v in program.variables() if v not in names)
    if unknown:
        return [
            Problem(
                path,
                f"expression names unknown variable {', '.join(map(repr, unknown))} "
                "(known: input, vars and the node ids)",
            )
        ]
    return []


def build_plan(spec: GraphSpec) -> GraphPlan:
    ids = [n.id for n in spec.nodes]
    out_edges: dict[str, list[int]] = {n: [] for n in ids}
    for i, edge in enumerate(spec.edges):
        out_edges[edge.source].append(i)
    # Back edges: those that close a cycle in a depth-first walk from the entry. Iterative, so
    # a 10,000-node chain does not hit the recursion limit.
    back: set[int] = set()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[tuple[str, Iterator[int]]] = [(spec.entry, iter(out_edges[spec.entry]))]
    state[spec.entry] = 1
    while stack:
        node, edges = stack[-1]
        for i in edges:
            target = spec.edges[i].target
            seen = state.get(target)
            if seen == 1:
                back.add(i)
            elif seen is None:
                state[target] = 1
                stack.append((target, iter(out_edges[target])))
                break
        else:
            state[node] = 2
            stack.pop()
    forward_in: dict[str, list[int]] = {n: [] for n in ids}
    for i, edge in enumerate(spec.edges):
        if i not in back:
            forward_in[edge.target].append(i)
    sinks = frozenset(n for n in ids if not out_edges[n])
    return GraphPlan(ids, out_edges, forward_in, frozenset(back), sinks, bool(back))


def _check_structure(spec: GraphSpec, plan: GraphPlan, problems: list[Problem]) -> None:
    index = {n.id: i for i, n in enumerate(spec.nodes)}
    reachable = _walk(spec.entry, lambda n: (spec.edges[i].target for i in plan.out_edges[n]))
    for node in spec.nodes:
        if node.id in index and node.id not in reachable:
            problems.append(
                Problem(
                    f"nodes[{index[node.id]}]",
                    f"node {node.id!r} is unreachable from the entry {spec.entry!r}",
                )
            )
    if plan.has_cycle and spec.max_steps is None:
        edge = spec.edges[min(plan.back_edges)]
        problems.append(
            Problem(
                "max_steps",
                f"the graph has a cycle (edge {edge.source} -> {edge.target}); set max_steps "
                "to bound how many nodes a run may execute",
            )
        )
    into: dict[str, list[str]] = {n: [] for n in plan.node_ids}
    for edge in spec.edges:
        into[edge.target].append(edge.source)
    can_finish = set()
    for sink in plan.sinks:
        can_finish |= _walk(sink, lambda n: into[n])
    for node_id in sorted(reachable - can_finish, key=index.__getitem__):
        problems.append(
            Problem(
                f"nodes[{index[node_id]}]",
                f"node {node_id!r} has no way to finish: every path from it loops forever "
                "(no path leads to a node without outgoing edges)",
            )
        )


def _walk(start: str, neighbours: Any) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in neighbours(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
