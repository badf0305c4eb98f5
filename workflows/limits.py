"""Limits on what users send — graphs, expressions, templates, inputs — and the checks that
enforce them. Pure, linear in the size of what they check, never recursive.

The gateway checks a run's input before the run starts; the worker checks it again (it never
trusts its input) before any library sees it: the CEL engine overflows its stack on operator
chains of ~12,000 terms and holds the GIL while it evaluates, the JSON codec gives up past 200
levels, and Temporal refuses payloads over 2 MB. Each limit is a setting (`DURABLE_AGENT_<NAME>`,
see `config.py`) that may lower, never raise, the ceiling written here; a run carries the limits
it started with, and the worker enforces them clamped to the ceilings.

Why expressions are bounded the way they are: without comprehension macros a CEL expression does
work proportional to its own length and to the size of the values it names, so bounding its
length, its nesting, how many values it names and how often it concatenates (`+`) bounds its
cost; the values themselves are bounded where they enter the run (input, node outputs).
Comprehensions (`all`, `exists`, `exists_one`, `filter`, `map`) multiply cost by list sizes, and
nested ones by each other (six nested `map`s froze a worker for 9 s), so they are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

KIB = 1024


class Limits(BaseModel):
    """Every bound on a run's untrusted data. Defaults are what runs get; `le` is the ceiling."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_expression_chars: int = Field(default=2000, ge=1, le=2000)
    max_expression_nesting: int = Field(default=32, ge=1, le=64)
    max_expression_additions: int = Field(default=16, ge=0, le=64)
    max_expression_references: int = Field(default=16, ge=1, le=64)
    max_template_chars: int = Field(default=20_000, ge=1, le=100_000)
    max_template_expressions: int = Field(default=32, ge=0, le=64)
    max_graph_nodes: int = Field(default=1000, ge=1, le=5000)
    max_graph_edges: int = Field(default=4000, ge=0, le=20_000)
    max_graph_bytes: int = Field(default=512 * KIB, ge=1, le=1024 * KIB)
    max_node_expressions: int = Field(default=32, ge=1, le=64)
    max_input_depth: int = Field(default=32, ge=1, le=64)
    max_input_bytes: int = Field(default=64 * KIB, ge=1, le=256 * KIB)
    max_node_output_bytes: int = Field(default=64 * KIB, ge=1, le=256 * KIB)
    max_variables_bytes: int = Field(default=512 * KIB, ge=1, le=1024 * KIB)
    max_parallel_nodes: int = Field(default=16, ge=1, le=64)
    max_node_read_bytes: int = Field(default=1024 * KIB, ge=1, le=4096 * KIB)
    max_run_steps: int = Field(default=10_000, ge=1, le=100_000)


def ceiling(name: str) -> int:
    """The most a setting of that name may allow."""
    for constraint in Limits.model_fields[name].metadata:
        bound = getattr(constraint, "le", None)
        if isinstance(bound, int):
            return bound
    raise KeyError(name)


# Nodes that run inside the workflow (condition, transform) between two yields to Temporal, and
# bytes of variables their expressions may read (the CEL engine converts what it reads, ~3 MB/s
# at worst), so that one activation never runs long enough for the deadlock detector to fire.
IN_WORKFLOW_STEPS_PER_ACTIVATION = 20
IN_WORKFLOW_READ_BYTES_PER_ACTIVATION = 1024 * KIB
# What one list or map counts for, in bytes read (see `read_weight`).
CONTAINER_WEIGHT = 64
# A regular expression costs its compiled size times the text: `matches()` takes a literal
# pattern whose `{n}` counts add up to this at most, and its expression reads at most this much.
MAX_PATTERN_REPEATS = 200
MATCHES_COST_FACTOR = 16
# Weighted by MATCHES_COST_FACTOR: an expression that calls matches() reads 128 KiB at most.
MATCHES_READ_BYTES = 128 * KIB * MATCHES_COST_FACTOR

_COMPREHENSION = re.compile(
    r"\.\s*(all|exists|exists_one|filter|map|transformList|transformMap|transformMapEntry)\s*\("
)
_LINE_COMMENT = re.compile(r"//[^\n]*")
_BRACKET = re.compile(r"[()\[\]{}]")
_MATCHES_CALL = re.compile(r"matches\s*\(")
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
# A plain (not raw, not triple-quoted) string literal, then the call's closing parenthesis.
_LITERAL_ARGUMENT = re.compile(r"""\s*(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")\s*\)""")
# A name that is not a field of something else (`input`, not the `input` of `x.input`).
_ROOT_NAME = re.compile(r"(?<![.\w`])[A-Za-z_]\w*")


def expression_problem(source: str, limits: Limits, names: Collection[str]) -> str | None:
    """Why the expression may not be compiled or run, or None. Conservative: it looks at the raw
    text (string literals and comments included), so it can refuse but never be fooled."""
    if len(source) > limits.max_expression_chars:
        return (
            f"expression is {len(source)} characters long; the limit is "
            f"{limits.max_expression_chars}"
        )
    texts = (source, _LINE_COMMENT.sub("", source)) if "//" in source else (source,)
    for text in texts:
        match = _COMPREHENSION.search(text)
        if match:
            return (
                f"comprehension macros ({match.group(1)}) are not supported in graph "
                "expressions: their cost cannot be bounded; use a tool node for list work"
            )
    problem = _matches_problem(source)
    if problem is not None:
        return problem
    deepest = _nesting(source, limits.max_expression_nesting)
    if deepest > limits.max_expression_nesting:
        return (
            f"expression nests brackets {deepest} deep; the limit is "
            f"{limits.max_expression_nesting}"
        )
    additions = source.count("+")
    if additions > limits.max_expression_additions:
        return (
            f"expression has {additions} '+' characters; the limit is "
            f"{limits.max_expression_additions}"
        )
    if names:
        references = sum(1 for name in referenced_names(source) if name in names)
        if references > limits.max_expression_references:
            return (
                f"expression names variables {references} times; the limit is "
                f"{limits.max_expression_references}"
            )
    return None


def _matches_problem(source: str) -> str | None:
    """A regular expression's cost grows with its size times the text's: `matches` takes a
    literal pattern (bounded by the expression's length), never one built from data. Checked on
    the raw text; an expression that calls it is one line, so no `//` comment can hide a call."""
    if "matches" not in source:
        return None
    if "\n" in source or "\r" in source:
        return "an expression that calls matches() must be on one line"
    for call in _MATCHES_CALL.finditer(source):
        literal = _LITERAL_ARGUMENT.match(source, call.end())
        if not literal:
            return (
                "matches() takes a literal pattern: write text.matches('pattern'); a pattern "
                "built from data could take the worker minutes to run"
            )
        repeats = sum(int(high or low) for low, high in _REPEAT.findall(literal.group()))
        if repeats > MAX_PATTERN_REPEATS:
            return (
                f"the pattern repeats {repeats} times in {{n}} counts; the limit is "
                f"{MAX_PATTERN_REPEATS} (a regular expression's cost grows with them)"
            )
    return None


def _nesting(source: str, limit: int) -> int:
    """How deep brackets nest (exact only past `limit`: fewer brackets cannot nest deeper)."""
    if sum(source.count(char) for char in "([{") <= limit:
        return 0
    depth = deepest = 0
    for match in _BRACKET.finditer(source):
        if match.group() in "([{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def referenced_names(source: str) -> list[str]:
    """Every name an expression reads that is not a field of something else, once per use
    (raw text: string literals included, so it can only over-count)."""
    return _ROOT_NAME.findall(source)


def template_parts(template: str) -> list[tuple[str, bool]]:
    """Split a template into (text, is_expression) parts: `{{ expr }}` is an expression, the rest
    text. Linear: each `{{` is matched with the first `}}` after it; an unclosed `{{` is text."""
    parts: list[tuple[str, bool]] = []
    last = 0
    while True:
        start = template.find("{{", last)
        if start < 0:
            break
        end = template.find("}}", start + 2)
        if end < 0:
            break
        parts.append((template[last:start], False))
        parts.append((template[start + 2 : end].strip(), True))
        last = end + 2
    parts.append((template[last:], False))
    return parts


def template_expressions(template: str) -> Iterator[str]:
    for text, is_expression in template_parts(template):
        if is_expression:
            yield text


def template_problem(template: str, limits: Limits) -> str | None:
    if len(template) > limits.max_template_chars:
        return (
            f"template is {len(template)} characters long; the limit is {limits.max_template_chars}"
        )
    count = sum(1 for _ in template_expressions(template))
    if count > limits.max_template_expressions:
        return (
            f"template has {count} {{{{ ... }}}} expressions; the limit is "
            f"{limits.max_template_expressions}"
        )
    return None


def json_problems(
    value: Any, *, max_depth: int, max_bytes: int, path: str = "input"
) -> list[tuple[str, str]]:
    """(JSON path, message) for what no run should carry: nesting deeper than `max_depth`, more
    than `max_bytes` once serialized, strings or keys that are not valid Unicode (a lone
    surrogate cannot be encoded), numbers that are not finite. Iterative (only containers go on
    the stack; paths are spelled out only for problems), and it stops once over the size."""
    problems: list[tuple[str, str]] = []
    size = _scalar_size(value, path, problems) if not isinstance(value, _CONTAINERS) else 0
    stack: list[tuple[Any, str, int]] = [(value, path, 0)] if size == 0 else []
    while stack:
        item, where, depth = stack.pop()
        if depth > max_depth:
            problems.append((where, f"nested deeper than {max_depth} levels"))
            continue
        size += 2
        keyed = isinstance(item, dict)
        for key, child in item.items() if keyed else enumerate(item):
            if keyed:
                key = str(key)
                if not key.isascii() and _not_unicode(key):
                    problems.append((where, "a key is not valid Unicode (lone surrogate)"))
                    continue
                size += len(key) + 4
            if isinstance(child, _CONTAINERS):
                stack.append((child, _child_path(where, key, keyed), depth + 1))
            elif type(child) is str and child.isascii():
                size += len(child) + 2  # the common case, without a call
            else:
                size += _scalar_size(child, (where, key, keyed), problems)
        if size > max_bytes:
            problems.append((path, f"larger than {max_bytes} bytes"))
            break
    return problems


_CONTAINERS = (dict, list, tuple)


def _child_path(where: str, key: Any, keyed: bool) -> str:
    return f"{where}.{key}" if keyed else f"{where}[{key}]"


def _scalar_size(
    item: Any, where: str | tuple[str, Any, bool], problems: list[tuple[str, str]]
) -> int:
    """Serialized size of a scalar; its problem, if any, at `where` (a path, or the parent's
    path, key and kind, spelled out only then)."""
    if isinstance(item, str):
        if _not_unicode(item):
            problems.append((_spell(where), "text is not valid Unicode (lone surrogate)"))
        return len(item) + 2
    if isinstance(item, float) and not math.isfinite(item):
        problems.append((_spell(where), f"{item} is not a finite number"))
    return 8


def _spell(where: str | tuple[str, Any, bool]) -> str:
    return where if isinstance(where, str) else _child_path(*where)


def read_weight(value: Any) -> tuple[int, int]:
    """(bytes, weight) of a value: its compact JSON size, and what reading it costs the CEL
    engine — bytes, plus CONTAINER_WEIGHT per list or map (converting many small containers
    costs far more than their bytes: 5,000 empty lists are 15 KB). Brackets inside strings
    count too: it can only over-estimate."""
    text = _compact(value)
    return len(text), len(text) + CONTAINER_WEIGHT * (text.count("[") + text.count("{"))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def text_problem(text: str, max_chars: int) -> str | None:
    """Why a user's text (a query, an answer to a question) is not acceptable, or None."""
    if len(text) > max_chars:
        return f"text is longer than {max_chars} characters"
    if _not_unicode(text):
        return "text is not valid Unicode (lone surrogate)"
    if is_blank(text):
        return "text must not be blank"
    return None


def is_blank(text: str) -> bool:
    """Nothing a person could read: only whitespace, NULs or other control characters."""
    return not any(char.isprintable() and not char.isspace() for char in text)


def _not_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
