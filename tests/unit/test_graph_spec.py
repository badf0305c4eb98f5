"""The graph validator: every kind of problem, all at once, each with a JSON path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config import PROJECT_ROOT
from workflows.graph_spec import validate

TOOLS = ["calculator", "search_docs"]


def problems(spec: dict[str, Any]) -> dict[str, str]:
    checked = validate(spec, TOOLS)
    return {p.path: p.message for p in checked.problems}


def graph(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": "g",
        "entry": nodes[0]["id"] if nodes else "a",
        "nodes": nodes,
        "edges": edges or [],
        **extra,
    }


def t(node_id: str, expr: str = "1") -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"set": {"x": expr}}}


@pytest.mark.parametrize(
    "path", sorted(Path(PROJECT_ROOT, "graphs").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_graph_is_valid(path: Path) -> None:
    assert problems(yaml.safe_load(path.read_text())) == {}


def test_a_valid_complex_graph() -> None:
    spec = graph(
        [
            t("start", "input.n"),
            {
                "id": "calc",
                "type": "tool",
                "config": {"tool": "calculator", "args": {"expression": "string(vars.x) + ' + 1'"}},
                "retry": {"max_attempts": 5, "initial_interval": 0.5, "backoff": 1.5},
                "timeout_s": 30,
            },
            {"id": "check", "type": "condition", "config": {"expression": "calc.value.empty"}},
            {"id": "ask", "type": "human_input", "config": {"question": "More? {{ vars.x }}"}},
            {"id": "agent", "type": "agent", "config": {"query": "Explain {{ input.topic }}"}},
            {"id": "write", "type": "llm", "config": {"prompt": "Write {{ ask.value.text }}"}},
            t("fallback", "calc.metadata.error"),
        ],
        [
            {"source": "start", "target": "calc"},
            {"source": "calc", "target": "check"},
            {"source": "calc", "target": "fallback", "on": "failure"},
            {"source": "check", "target": "ask", "when": "check.value"},
            {"source": "check", "target": "agent", "when": "!check.value"},
            {"source": "ask", "target": "write"},
            {"source": "write", "target": "start", "when": "size(write.value.text) < 10"},
        ],
        max_steps=50,
    )
    checked = validate(spec, TOOLS)
    assert checked.ok, checked.problems
    assert checked.plan is not None and checked.plan.has_cycle
    assert checked.plan.sinks == frozenset({"agent", "fallback"})


def test_all_problems_are_reported_at_once_with_paths() -> None:
    found = problems(
        graph(
            [
                t("a"),
                {"id": "a", "type": "transform", "config": {"set": {"x": "1"}}},  # duplicate
                {"id": "", "type": "llm", "config": {"prompt": "hi"}},  # missing id
                {"id": "b", "type": "teleport", "config": {}},  # unknown type
                {
                    "id": "c",
                    "type": "tool",
                    "config": {"tool": "shell", "args": {}},
                },  # unknown tool
                {"id": "d", "type": "condition", "config": {"expression": "1 +"}},  # syntax
                {"id": "e", "type": "condition", "config": {"expression": "nobody.value"}},
                {"id": "f", "type": "llm", "config": {}},  # no prompt
                {"id": "g", "type": "llm", "config": {"prompt": "Hi {{ ghost }}"}},
                t("island"),  # unreachable
            ],
            [
                {"source": "a", "target": "nowhere"},
                {"source": "elsewhere", "target": "a"},
                {"source": "a", "target": "c", "when": "a.value.x >"},
            ],
        )
    )
    assert "duplicate node id 'a'" in found["nodes[1].id"]
    assert found["nodes[2].id"] == "node id is missing"
    assert "unknown node type 'teleport'" in found["nodes[3].type"]
    assert "unknown tool 'shell'" in found["nodes[4].config.tool"]
    assert "does not compile" in found["nodes[5].config.expression"]
    assert "unknown variable 'nobody'" in found["nodes[6].config.expression"]
    assert "needs config.prompt" in found["nodes[7].config.prompt"]
    assert "unknown variable 'ghost'" in found["nodes[8].config.prompt{{0}}"]
    assert "'nowhere' is not a node id" in found["edges[0].target"]
    assert "'elsewhere' is not a node id" in found["edges[1].source"]
    assert "does not compile" in found["edges[2].when"]


def test_entry_problems() -> None:
    assert "entry 'zz' is not a node id" in problems(graph([t("a")]) | {"entry": "zz"})["entry"]
    assert problems(graph([t("a")]) | {"entry": ""})["entry"] == "entry is missing"


def test_structure_problems() -> None:
    unreachable = problems(graph([t("a"), t("b")]))
    assert unreachable == {"nodes[1]": "node 'b' is unreachable from the entry 'a'"}

    loop = graph(
        [t("a"), t("b"), t("out")],
        [
            {"source": "a", "target": "b"},
            {"source": "b", "target": "a", "when": "vars.x < 3"},
            {"source": "b", "target": "out", "when": "vars.x >= 3"},
        ],
    )
    assert "cycle" in problems(loop)["max_steps"]
    assert problems(loop | {"max_steps": 10}) == {}

    trap = graph(
        [t("a"), t("b"), t("c")],
        [
            {"source": "a", "target": "b"},
            {"source": "b", "target": "c"},
            {"source": "c", "target": "b"},
        ],
        max_steps=10,
    )
    found = problems(trap)
    assert "no way to finish" in found["nodes[0]"]  # a leads only into the b<->c trap
    assert "no way to finish" in found["nodes[1]"] and "no way to finish" in found["nodes[2]"]


def test_shape_problems_come_from_the_model_with_paths() -> None:
    found = problems({"name": "bad name!", "entry": "a", "nodes": [{"id": "a"}], "extra": 1})
    assert set(found) == {"name", "nodes[0].type", "extra"}
    found = problems(
        {"name": "g", "entry": "a", "nodes": [t("a") | {"retry": {"max_attempts": 0}}]}
    )
    assert "nodes[0].retry.max_attempts" in found


def test_ids_must_be_usable_in_expressions() -> None:
    found = problems(
        graph(
            [t("a"), t("has-dash"), t("input")],
            [{"source": "a", "target": "has-dash"}, {"source": "a", "target": "input"}],
        )
    )
    assert "must be a name" in found["nodes[1].id"] and "must be a name" in found["nodes[2].id"]
