"""An agent's structured answer: check it against the definition's `output_schema`.

jsonschema-rs (Rust, already what graph input schemas use): fast, full Draft 2020-12, and it can
be told never to fetch a remote `$ref` and to use a linear-time regex engine, so a schema from a
definition can neither reach the network nor make a check slow.
"""

from __future__ import annotations

import json
from typing import Any

from workflows.graph_spec import schema_validator


def answer_problems(schema: dict[str, Any], text: str) -> list[str]:
    """Why `text` is not a JSON value matching `schema` (empty when it is)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return [f"the answer is not JSON: {exc}"]
    validator = schema_validator(json.dumps(schema, sort_keys=True))
    problems = []
    for error in validator.iter_errors(value):
        where = "/".join(str(p) for p in error.instance_path) or "(the answer)"
        problems.append(f"{where}: {error.message}"[:300])
        if len(problems) == 10:
            break
    return problems


def skeleton(schema: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A value of the schema's shape, with `text` in its strings: what the offline provider
    answers when a definition asks for structured output (deterministic, never a model)."""
    if depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return skeleton(schema[key][0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = schema.get("required", list(properties))
        return {
            name: skeleton(properties.get(name, {}), text, depth + 1)
            for name in required
            if isinstance(properties.get(name, {}), dict)
        }
    if kind == "array":
        items = schema.get("items")
        count = int(schema.get("minItems", 1 if isinstance(items, dict) else 0))
        return [skeleton(items, text, depth + 1) for _ in range(count)] if items else []
    if kind in ("integer", "number"):
        return max(0, schema.get("minimum", 0))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    limit = schema.get("maxLength")
    return text[:limit] if isinstance(limit, int) else text
