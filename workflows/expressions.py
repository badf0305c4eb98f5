"""Evaluating the CEL expressions of a graph (deterministic; safe inside a workflow)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel

from workflows.graph_spec import template_parts


class ExpressionError(Exception):
    """An expression failed at run time (a missing key, a type mismatch, ...)."""


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return cel.compile(source)


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    try:
        return plain(_compiled(source).execute(variables))
    except Exception as exc:  # the library raises KeyError, TypeError, RuntimeError, ...
        raise ExpressionError(f"{source!r} failed: {_describe(exc)}") from None


def render(template: str, variables: dict[str, Any]) -> str:
    out = []
    for text, is_expression in template_parts(template):
        if not is_expression:
            out.append(text)
            continue
        value = evaluate(text, variables)
        out.append(value if isinstance(value, str) else _to_text(value))
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
    import json

    return json.dumps(value, sort_keys=True)


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}"
    return str(exc).split("\n")[0]
