"""GraphSpec, the user-defined workflow graph, and `validate()`: pure, no I/O.

The gateway validates a spec before anything starts and the GraphWorkflow interprets the
validated spec (pinned in the run's input). A node's kind is its `type`: one model per kind in
`workflows/node_kinds.py`. Expressions (edge `when`, `condition`, `transform`, `{{ ... }}`
templates, tool arguments) are CEL, compiled here with `common-expression-language` (Rust-backed:
~25 µs a compile, precise syntax errors, and it lists an expression's variables so unknown names
are caught before the run).

Names an expression may use: `input` (the run's input), `vars` (what `transform` nodes set) and
the id of any node (its output `{value, metadata}`, or null while it has not run).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import cel
import jsonschema_rs
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from workflows.execution import EXECUTION_DESCRIPTION, Execution
from workflows.limits import (
    Limits,
    ceiling,
    expression_problem,
    json_problems,
    template_expressions,
    template_problem,
)
from workflows.node_kinds import NODE_KINDS, Node, NodeBase
from workflows.scheduler import Edge, GraphPlan, build_plan

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
NODE_ADAPTER: TypeAdapter[NodeBase] = TypeAdapter(Node)


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


class GraphHeader(BaseModel):
    """Everything of a graph but its nodes and edges."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    version: str = "1"
    description: str = ""
    entry: str
    max_steps: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Bound on node executions (needed for cycles)"
    )
    execution: Execution | None = Field(
        default=None, description=EXECUTION_DESCRIPTION + "; a node's own `execution` wins"
    )
    input_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema (2020-12) the run's input must match; checked before a run "
        "starts (422 with the path of each problem).",
    )


class GraphSpec(GraphHeader):
    nodes: list[Node] = Field(max_length=MAX_NODES)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=MAX_EDGES)

    def plan(self) -> GraphPlan:
        return build_plan(
            [n.id for n in self.nodes],
            self.entry,
            [Edge(e.source, e.target, e.on) for e in self.edges],
        )


class _Shape(GraphHeader):
    """A graph whose nodes and edges are checked one by one (so that all problems show)."""

    nodes: list[Any] = Field(max_length=MAX_NODES)
    edges: list[Any] = Field(default_factory=list, max_length=MAX_EDGES)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


@dataclass
class Validation:
    spec: GraphSpec | None
    problems: list[Problem] = field(default_factory=list)
    plan: GraphPlan | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(
    data: Any,
    tools: Collection[str] | None,
    limits: Limits | None = None,
    agents: Collection[str] | None = None,
) -> Validation:
    """Every problem of a graph definition at once, each with a JSON path and a message: its
    shape, its nodes' configs, its expressions and its structure (unreachable nodes, cycles
    without `max_steps`) in one answer.

    `tools` None skips the tool check (the worker re-validates a pinned spec without knowing
    the gateway's registry); `agents` None skips the check of `agent` nodes' catalog names
    likewise (the run pins the definitions it names). Limits are checked before any expression
    reaches the CEL engine.
    """
    limits = limits or Limits()
    raw = (
        data.model_dump(mode="json", exclude_defaults=True) if isinstance(data, GraphSpec) else data
    )
    oversized = json_problems(
        raw, max_depth=MAX_SPEC_DEPTH, max_bytes=limits.max_graph_bytes, path="graph"
    )
    if oversized:
        return Validation(None, [Problem(path, message) for path, message in oversized])
    shape: _Shape | GraphSpec
    try:
        # A GraphSpec was parsed when it was made (the worker's pinned spec): not again.
        shape = data if isinstance(data, GraphSpec) else _Shape.model_validate(raw)
    except ValidationError as exc:
        found = _problems(exc, "")
        if not isinstance(raw, dict) or any(p.path in ("nodes", "edges") for p in found):
            return Validation(None, found)
        # Its other parts are still checked, so that every problem shows at once.
        usable: dict[str, Any] = {
            "entry": raw.get("entry"),
            "max_steps": raw.get("max_steps"),
            "input_schema": None,
            "nodes": raw.get("nodes", []),
            "edges": raw.get("edges", []),
        }
        shape = _Shape.model_construct(**usable)
        problems = found
    else:
        problems = []
    if len(shape.nodes) > limits.max_graph_nodes:
        problems.append(
            Problem("nodes", f"{len(shape.nodes)} nodes; the limit is {limits.max_graph_nodes}")
        )
    if len(shape.edges) > limits.max_graph_edges:
        problems.append(
            Problem("edges", f"{len(shape.edges)} edges; the limit is {limits.max_graph_edges}")
        )
    if isinstance(shape.max_steps, int) and shape.max_steps > limits.max_run_steps:
        problems.append(
            Problem(
                "max_steps",
                f"max_steps is {shape.max_steps}; the limit is {limits.max_run_steps} node "
                "executions per run",
            )
        )
    if (
        problems
        and not any(p.path.startswith(("nodes[", "edges[")) for p in problems)
        and any(p.path in ("nodes", "edges", "max_steps") for p in problems)
    ):
        return Validation(None, problems)
    ids, nodes = _check_nodes(shape.nodes, tools, limits, problems)
    for i, node in nodes:
        agent = getattr(node.config, "agent", None) if node.kind == "agent" else None
        if agent is not None and agents is not None and agent not in agents:
            problems.append(
                Problem(
                    f"nodes[{i}].config.agent",
                    f"unknown agent {agent!r}; known: {', '.join(sorted(agents))}",
                )
            )
    edges = _check_edges(shape.edges, ids, problems)
    entry = shape.entry if isinstance(shape.entry, str) else ""
    if entry not in ids:
        problems.append(
            Problem("entry", f"entry {entry!r} is not a node id")
            if entry
            else Problem("entry", "entry is missing")
        )
    if shape.input_schema is not None:
        problem = schema_problem(shape.input_schema)
        if problem is not None:
            problems.append(Problem("input_schema", problem))
    names = frozenset(BUILTIN_NAMES | ids.keys())
    for i, node in nodes:
        for path, source in node.expressions():
            problems.extend(_check_expression(f"nodes[{i}].config.{path}", source, names, limits))
    for i, edge in edges:
        if edge.when is not None:
            problems.extend(_check_expression(f"edges[{i}].when", edge.when, names, limits))
    plan = None
    if entry in ids and len(edges) == len(shape.edges):
        plan = build_plan(list(ids), entry, [Edge(e.source, e.target, e.on) for _, e in edges])
        _check_structure(entry, ids, plan, shape.max_steps, problems)
    if problems:
        return Validation(None, _unique(problems))
    spec = data
    if not isinstance(data, GraphSpec):  # from the parts checked above, not parsed again
        header = {name: getattr(shape, name) for name in GraphHeader.model_fields}
        spec = GraphSpec.model_construct(
            set(raw), **header, nodes=[cast(Any, n) for _, n in nodes], edges=[e for _, e in edges]
        )
    return Validation(spec, [], plan)


def _unique(problems: list[Problem]) -> list[Problem]:
    """One problem per path (the first found: the most specific check runs first)."""
    seen: set[str] = set()
    out = []
    for problem in problems:
        if problem.path not in seen:
            seen.add(problem.path)
            out.append(problem)
    return out


def _problems(exc: ValidationError, prefix: str, kind: str | None = None) -> list[Problem]:
    found = []
    for e in exc.errors(include_url=False, include_context=True):
        loc = tuple(e["loc"])
        if kind is not None and loc and loc[0] == kind:
            loc = loc[1:]  # the union's tag: not part of the document's path
        path = prefix + _path(loc, bool(prefix))
        message = e["msg"]
        if e["type"] == "union_tag_invalid":
            tag = e.get("ctx", {}).get("tag")
            path, message = (
                f"{prefix}.type",
                (f"unknown node type {tag!r}; known: {', '.join(NODE_KINDS)}"),
            )
        elif e["type"] == "union_tag_not_found":
            path, message = f"{prefix}.type", f"a node needs a type; known: {', '.join(NODE_KINDS)}"
        elif e["type"] == "missing" and len(loc) == 2 and loc[0] == "config":
            message = f"a {kind} node needs config.{loc[1]}"
        elif e["type"] == "string_type" and len(loc) == 3 and loc[1] in ("set", "args"):
            message = (
                "must be a CEL expression as a string (write "
                f"{json.dumps(e.get('input'))!r} for that value)"
            )
        found.append(Problem(path or "graph", message))
    return found


def _path(loc: tuple[Any, ...], nested: bool = False) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if (out or nested) else str(part)
    return out


def _check_nodes(
    items: list[Any], tools: Collection[str] | None, limits: Limits, problems: list[Problem]
) -> tuple[dict[str, int], list[tuple[int, NodeBase]]]:
    """Node ids (of every node that has a usable one, even when its config is wrong, so that
    edges to it are not reported too) and the nodes that parsed, by index."""
    ids: dict[str, int] = {}
    nodes: list[tuple[int, NodeBase]] = []
    for i, item in enumerate(items):
        where = f"nodes[{i}]"
        node_id = item.id if isinstance(item, NodeBase) else None
        if isinstance(item, dict):
            node_id = item.get("id")
        if not node_id:
            problems.append(Problem(f"{where}.id", "node id is missing"))
        elif not isinstance(node_id, str) or not _ID.match(node_id) or node_id in _CEL_RESERVED:
            problems.append(
                Problem(
                    f"{where}.id",
                    f"node id {node_id!r} must be a name (letters, digits, _; not a reserved "
                    "word) so that expressions can refer to it",
                )
            )
        elif node_id in ids:
            problems.append(
                Problem(
                    f"{where}.id", f"duplicate node id {node_id!r} (also nodes[{ids[node_id]}])"
                )
            )
        else:
            ids[node_id] = i
        try:
            node = item if isinstance(item, NodeBase) else NODE_ADAPTER.validate_python(item)
        except ValidationError as exc:
            kind = item.get("type") if isinstance(item, dict) else None
            problems.extend(_problems(exc, where, kind if isinstance(kind, str) else None))
            continue
        nodes.append((i, node))
        _check_node(node, where, tools, limits, problems)
    return ids, nodes


def _check_node(
    node: NodeBase,
    where: str,
    tools: Collection[str] | None,
    limits: Limits,
    problems: list[Problem],
) -> None:
    config = node.config
    for key in ("set", "args"):
        for name in getattr(config, key, {}):
            if not _ID.match(name):
                problems.append(
                    Problem(
                        f"{where}.config.{key}",
                        f"{name!r} is not a name (letters, digits, _; at most 64)",
                    )
                )
    tool = getattr(config, "tool", None)
    if tool is not None and tools is not None and tool not in tools:
        problems.append(
            Problem(
                f"{where}.config.tool",
                f"unknown tool {tool!r}; known: {', '.join(sorted(tools))}",
            )
        )
    if node.retry is not None and not node.retries:
        problems.append(
            Problem(f"{where}.retry", f"a {node.kind} node runs no activity; retry has no effect")
        )
    if node.execution is not None and not node.activity_kind:
        problems.append(
            Problem(
                f"{where}.execution",
                f"a {node.kind} node runs no activity of its own; execution applies to llm and "
                "tool nodes",
            )
        )
    count = 0
    for key, template in node.templates():
        problem = template_problem(template, limits)
        if problem is not None:
            problems.append(Problem(f"{where}.config.{key}", problem))
            return
        count += sum(1 for _ in template_expressions(template))
    count += len(getattr(config, "set", {})) + len(getattr(config, "args", {}))
    if count > limits.max_node_expressions:
        problems.append(
            Problem(
                f"{where}.config",
                f"the node has {count} expressions; the limit is {limits.max_node_expressions}",
            )
        )


def _check_edges(
    items: list[Any], ids: dict[str, int], problems: list[Problem]
) -> list[tuple[int, EdgeSpec]]:
    edges = []
    for i, item in enumerate(items):
        try:
            edge = item if isinstance(item, EdgeSpec) else EdgeSpec.model_validate(item)
        except ValidationError as exc:
            problems.extend(_problems(exc, f"edges[{i}]"))
            continue
        ok = True
        for end in ("source", "target"):
            name = getattr(edge, end)
            if name not in ids:
                ok = False
                problems.append(
                    Problem(f"edges[{i}].{end}", f"edge {end} {name!r} is not a node id")
                )
        if ok:
            edges.append((i, edge))
    return edges


def _no_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri}: a schema may not refer to other documents")


@lru_cache(maxsize=256)
def schema_validator(schema_json: str) -> Any:
    # The `regex` engine (linear time: no pattern can make a check slow), and no retrieval of
    # remote references: validating never touches the network.
    return jsonschema_rs.validator_for(
        json.loads(schema_json),
        retriever=_no_retrieval,
        pattern_options=jsonschema_rs.RegexOptions(),
    )


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why a graph's `input_schema` is not a usable JSON Schema, or None."""
    try:
        jsonschema_rs.meta.validate(schema)
        schema_validator(json.dumps(schema, sort_keys=True))
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        return "not a valid JSON Schema: " + str(exc).split("\n")[0][:300]
    return None


def input_problems(
    schema: dict[str, Any] | None, value: Any, path: str = "input"
) -> list[tuple[str, str]]:
    """(path, message) of each way `value` does not match the graph's input schema."""
    if schema is None:
        return []
    validator = schema_validator(json.dumps(schema, sort_keys=True))
    return [
        (path + _path(tuple(error.instance_path), True), error.message)
        for error in validator.iter_errors(value)
    ][:20]


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


def _check_structure(
    entry: str,
    ids: dict[str, int],
    plan: GraphPlan,
    max_steps: int | None,
    problems: list[Problem],
) -> None:
    reachable = _walk(entry, lambda n: (plan.edges[i].target for i in plan.out_edges[n]))
    for node_id, index in ids.items():
        if node_id not in reachable:
            problems.append(
                Problem(
                    f"nodes[{index}]",
                    f"node {node_id!r} is unreachable from the entry {entry!r}",
                )
            )
    if plan.has_cycle and max_steps is None:
        edge = plan.edges[min(plan.back_edges)]
        problems.append(
            Problem(
                "max_steps",
                f"the graph has a cycle (edge {edge.source} -> {edge.target}); set max_steps "
                "to bound how many nodes a run may execute",
            )
        )
    into: dict[str, list[str]] = {n: [] for n in plan.node_ids}
    for edge in plan.edges:
        into[edge.target].append(edge.source)
    can_finish: set[str] = set()
    for sink in plan.sinks:
        can_finish |= _walk(sink, lambda n: into[n])
    for node_id in sorted(reachable - can_finish, key=ids.__getitem__):
        problems.append(
            Problem(
                f"nodes[{ids[node_id]}]",
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


def run_input_problem(
    spec: GraphSpec, value: dict[str, Any], limits: Limits, check_schema: bool = True
) -> str | None:
    """What makes a run's pinned spec and input unrunnable (the worker checks again what the
    gateway checked): a spec that does not validate (tools aside: the worker does not know the
    gateway's registry; an unknown tool fails its node), an input over the run's limits or not
    matching the graph's input schema."""
    checked = validate(spec, None, limits)
    if not checked.ok:
        listed = "; ".join(f"{p.path}: {p.message}" for p in checked.problems[:5])
        more = len(checked.problems) - 5
        return f"the graph is not valid: {listed}" + (f" (and {more} more)" if more > 0 else "")
    problems = json_problems(
        value, max_depth=limits.max_input_depth, max_bytes=limits.max_input_bytes
    )
    if not problems and check_schema:
        problems = input_problems(spec.input_schema, value)
    if problems:
        return "the graph's input is not acceptable: " + "; ".join(
            f"{path}: {message}" for path, message in problems[:5]
        )
    return None
