"""Evaluating the CEL expressions of a graph (deterministic; safe inside a workflow).

The worker never trusts the spec it runs: every expression is checked against the run's limits
again before the CEL engine sees it (see `workflows/limits.py`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from workflows.graph_spec import compiled
from workflows.limits import Limits, expression_problem, template_parts, template_problem


class ExpressionError(Exception):
    """An expression failed at run time (a missing key, a type mismatch, a limit, ...)."""


def evaluate(source: str, variables: dict[str, Any], limits: Limits | None) -> Any:
    """The expression's value. `limits` None skips the checks (runs started before them)."""
    problem = None if limits is None else expression_problem(source, limits, variables.keys())
    if problem is not None:
        raise ExpressionError(f"{_short(source)} refused: {problem}")
    try:
        program = compiled(source)
        # Only what the expression reads: the engine converts every value it is given.
        scoped = {name: variables[name] for name in _names(source) if name in variables}
        return plain(program.execute(scoped))
    except Exception as exc:  # the library raises KeyError, TypeError, RuntimeError, ...
        raise ExpressionError(f"{_short(source)} failed: {_describe(exc)}") from None


@lru_cache(maxsize=4096)
def _names(source: str) -> tuple[str, ...]:
    return tuple(compiled(source).variables())


def render(template: str, variables: dict[str, Any], limits: Limits | None) -> str:
    problem = None if limits is None else template_problem(template, limits)
    if problem is not None:
        raise ExpressionError(f"template refused: {problem}")
    out = []
    size = 0
    for text, is_expression in template_parts(template):
        if is_expression:
            value = evaluate(text, variables, limits)
            text = value if isinstance(value, str) else _to_text(value)
        size += len(text)
        if limits is not None and size > limits.max_node_output_bytes:
            raise ExpressionError(
                f"the rendered text is longer than {limits.max_node_output_bytes} characters"
            )
        out.append(text)
    return "".join(out)


def plain(value: Any) -> Any:
    """CEL values as plain JSON-able Python, maps with sorted keys (stable across processes)."""
    if isinstance(value, dict):
        return {str(k): plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _to_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _short(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}"
    return str(exc).split("\n")[0][:300]
