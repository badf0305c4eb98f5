"""The limits on untrusted data, and fuzzing of the validator, the expression layer and the
template scanner with huge and deep inputs (Hypothesis). Nothing here may crash the process,
raise anything but the documented errors, or take more than linear time."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.tools.calculator import evaluate as calculate
from activities.tools.notes import AppendNoteArgs
from activities.tools.registry import ToolError
from activities.tools.search_docs import SearchDocsArgs
from workflows.expressions import ExpressionError, evaluate, render
from workflows.graph_spec import validate
from workflows.limits import (
    Limits,
    expression_problem,
    json_problems,
    template_parts,
    text_problem,
)

LIMITS = Limits()
TOOLS = ["calculator", "search_docs"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def one_node(node_type: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": "g", "entry": "n", "nodes": [{"id": "n", "type": node_type, "config": config}]}


def problems(graph: dict[str, Any]) -> list[str]:
    return [f"{p.path}: {p.message}" for p in validate(graph, TOOLS).problems]


# ---- expressions -------------------------------------------------------------------------


def test_an_operator_chain_long_enough_to_crash_the_engine_is_refused_before_it():
    # ~20,000 terms segfault the CEL engine (compile or evaluate): this would kill the process.
    chain = "+".join(["1"] * 20_000) + " > 0"
    found = problems(one_node("condition", {"expression": chain}))
    assert found == [
        "nodes[0].config.expression: expression is 40003 characters long; the limit is 2000"
    ]
    with pytest.raises(ExpressionError, match="refused"):
        evaluate(chain, {}, LIMITS)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("[1,2].map(x, [1,2].map(y, y))", "comprehension macros (map)"),
        ("input.items.exists(i, i > 0)", "comprehension macros (exists)"),
        ("input.items . // hidden\n filter(i, true)", "comprehension macros (filter)"),
        ("'a' + " * 40 + "'b'", "40 '+' characters; the limit is 16"),
        ("(" * 40 + "1" + ")" * 40, "nests brackets 40 deep"),
        (" || ".join(["input.a == 1"] * 40), "names variables 40 times"),
        ("input.a.matches(input.p)", "matches() takes a literal pattern"),
        ("input.a.matches('x' + input.p)", "matches() takes a literal pattern"),
        ("matches(input.a, 'x')", "matches() takes a literal pattern"),
        ("input.a.matches( // hide\n input.p)", "must be on one line"),
        ("input.a.matches('a{100}b{150}')", "repeats 250 times"),
    ],
)
def test_costly_expressions_are_refused(expression: str, message: str):
    assert message in (expression_problem(expression, LIMITS, {"input"}) or "")
    assert any(message in p for p in problems(one_node("condition", {"expression": expression})))


def test_a_literal_pattern_is_fine():
    assert expression_problem("input.a.matches('^(?i)ref+und|invoice$')", LIMITS, {"input"}) is None
    variables = {"input": {"a": "Refund please"}}
    assert evaluate("input.a.matches('(?i)refund')", variables, LIMITS) is True


def test_refusal_looks_at_the_raw_text_so_strings_cannot_hide_a_macro():
    # Conservative on purpose: a macro-looking string is refused too; a comment cannot hide one.
    assert expression_problem("'x.map(' == input.a", LIMITS, {"input"}) is not None
    assert expression_problem("input.a // .map(\n == 1", LIMITS, {"input"}) is not None
    assert expression_problem("input.a.contains('call(')", LIMITS, {"input"}) is None


@FUZZ
@given(st.text(alphabet="1+-*/()[]{}!?:.,<>=&|'\" abxinputvars", max_size=300))
def test_the_expression_layer_never_raises_anything_else(source: str):
    variables = {"input": {"a": 1, "b": "x"}, "vars": {}}
    try:
        evaluate(source, variables, LIMITS)
    except ExpressionError:
        pass


@FUZZ
@given(st.integers(min_value=2_000, max_value=60_000), st.sampled_from(["+", "-", "&&", "."]))
def test_huge_expressions_are_refused_without_reaching_the_engine(size: int, op: str):
    source = op.join(["1"] * (size // len(op)))
    with pytest.raises(ExpressionError, match="characters long"):
        evaluate(source, {}, LIMITS)


# ---- templates ---------------------------------------------------------------------------

_OLD_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def _old_parts(template: str) -> list[tuple[str, bool]]:
    parts: list[tuple[str, bool]] = []
    last = 0
    for match in _OLD_TEMPLATE.finditer(template):
        parts.append((template[last : match.start()], False))
        parts.append((match.group(1).strip(), True))
        last = match.end()
    parts.append((template[last:], False))
    return parts


@FUZZ
@given(st.text(alphabet="{} ab\n", max_size=200))
def test_the_linear_scanner_splits_templates_as_the_regex_did(template: str):
    assert template_parts(template) == _old_parts(template)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("template", ["{" * 300_000, "{{" * 150_000, "{{ a }" * 60_000])
def test_scanning_a_hostile_template_is_linear(template: str):
    # The regex took 30 s on 65,000 "{" (quadratic); a linear scan of 300,000 is instant.
    assert template_parts(template)[-1][1] is False


def test_a_template_over_its_limits_is_refused():
    found = problems(one_node("llm", {"prompt": "{{" * 20_000}))
    assert found == [
        "nodes[0].config.prompt: template is 40000 characters long; the limit is 20000"
    ]
    many = " ".join(["{{ input.a }}"] * 40)
    assert "40 {{ ... }} expressions" in problems(one_node("llm", {"prompt": many}))[0]
    with pytest.raises(ExpressionError, match="template refused"):
        render("{{" * 20_000, {}, LIMITS)


def test_a_rendered_template_is_bounded():
    text = "x" * 50_000
    with pytest.raises(ExpressionError, match="rendered text is longer than 65536"):
        render("{{ input.t }}{{ input.t }}", {"input": {"t": text}}, LIMITS)


# ---- graphs ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [5, True, None, ["a"], {"k": 1}])
def test_non_string_transform_values_are_refused_at_validation(value: Any):
    found = problems(one_node("transform", {"set": {"x": value}}))
    assert len(found) == 1 and found[0].startswith("nodes[0].config.set.x: must be a CEL")


def test_loops_and_names_are_bounded():
    loop = one_node("condition", {"expression": "true"}) | {"max_steps": 10_001}
    assert problems(loop) == [
        "max_steps: max_steps is 10001; the limit is 10000 node executions per run"
    ]
    for key in ("", "a.b", "\u0000"):
        found = problems(one_node("transform", {"set": {key: "1"}}))
        assert found and "is not a name" in found[0]
    assert json_problems({"x": float("inf")}, max_depth=4, max_bytes=100) == [
        ("input.x", "inf is not a finite number")
    ]


def test_graph_size_is_bounded():
    nodes = [
        {"id": f"n{i}", "type": "condition", "config": {"expression": "true"}} for i in range(1001)
    ]
    found = problems({"name": "g", "entry": "n0", "nodes": nodes})
    assert found == ["nodes: 1001 nodes; the limit is 1000"]
    huge = one_node("llm", {"prompt": "x" * 600_000})
    assert problems(huge) == ["graph: larger than 524288 bytes"]


def test_a_spec_nested_past_its_depth_is_refused_without_recursion():
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    found = problems(one_node("llm", {"prompt": "p", "extra": deep}))
    assert found == ["graph.nodes[0].config.extra" + "[0]" * 13 + ": nested deeper than 16 levels"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=60,
)


@FUZZ
@given(json_values)
def test_the_validator_answers_any_json_with_problems_never_an_exception(data: Any):
    result = validate(data, TOOLS)
    assert result.ok is (not result.problems)


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.sampled_from(["a", "b", "c", "input", "1x", ""]),
                "type": st.sampled_from(["llm", "tool", "condition", "transform", "nope"]),
                "config": st.dictionaries(
                    st.sampled_from(["prompt", "expression", "set", "args", "tool"]),
                    json_values | st.text(alphabet="{}ab.+()' ", max_size=3000),
                    max_size=3,
                ),
            }
        ),
        max_size=6,
    ),
    st.lists(
        st.fixed_dictionaries(
            {"source": st.sampled_from(["a", "b", "c"]), "target": st.sampled_from(["a", "b"])}
        ),
        max_size=6,
    ),
)
def test_the_validator_survives_random_graphs(nodes: list[Any], edges: list[Any]):
    result = validate({"name": "g", "entry": "a", "nodes": nodes, "edges": edges}, TOOLS)
    for problem in result.problems:
        assert problem.path and problem.message


# ---- inputs ------------------------------------------------------------------------------


def test_input_checks_find_depth_size_and_lone_surrogates_iteratively():
    deep: Any = {}
    cursor = deep
    for _ in range(50_000):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert json_problems(deep, max_depth=32, max_bytes=10**9) == [
        ("input" + ".a" * 33, "nested deeper than 32 levels")
    ]
    assert json_problems({"t": "x" * 100}, max_depth=32, max_bytes=50) == [
        ("input", "larger than 50 bytes")
    ]
    assert json_problems({"t": ["ok", "\ud800"]}, max_depth=32, max_bytes=1000) == [
        ("input.t[1]", "text is not valid Unicode (lone surrogate)")
    ]


@FUZZ
@given(json_values, st.integers(min_value=1, max_value=40), st.integers(1, 5000))
def test_input_checks_never_raise(value: Any, depth: int, size: int):
    for path, message in json_problems(value, max_depth=depth, max_bytes=size):
        assert path.startswith("input") and message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("\x00\x00", "text must not be blank"),
        (" \t\n\u200b", "text must not be blank"),  # zero-width: nothing to read
        ("   ", "text must not be blank"),
        ("a\ud800", "text is not valid Unicode (lone surrogate)"),
        ("x" * 9, "text is longer than 8 characters"),
        ("fine", None),
    ],
)
def test_user_text(text: str, problem: str | None):
    assert text_problem(text, 8) == problem


# ---- tools -------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["1e999", "-1e999 * 2", "1e308 * 10"])
def test_the_calculator_never_answers_infinity(expression: str):
    with pytest.raises(ToolError):
        calculate(expression)


@pytest.mark.parametrize("text", ["   ", "\x00", "\n\t"])
def test_a_blank_note_is_refused(text: str):
    with pytest.raises(ValueError, match="must not be blank"):
        AppendNoteArgs(text=text)


def test_search_docs_takes_a_query_as_long_as_a_run_may_have():
    query = ("worker crash " * 1000)[:8000]
    assert SearchDocsArgs(query=query).query == query[:2000]
