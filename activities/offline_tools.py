"""How the offline provider picks a user tool (a Python function or an MCP tool) and fills its
arguments: no model, only rules, so that every tool path can be reached on purpose.

A tool is picked when the query names it: each word of the tool's own name found in the query
counts 2, each other word of its description 1; the best tool scoring 2 or more whose required
arguments can all be filled wins (ties: the first name). Arguments come from the query:
numbers in order for numeric parameters, `/paths` for path-like ones, a city for a timezone
(`Tokyo` -> `Asia/Tokyo`), `HH:MM` for a `time`, and the query itself for the one remaining
string parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from activities.models import ToolCall
from activities.tools.catalog import ToolSpec
from activities.tools.search_docs import terms_of

_NUMBER = re.compile(r"(?<![\w.:])-?\d+(?:\.\d+)?(?![\w:])")
_PATH = re.compile(r"(?<!\S)(/[^\s'\"]+)")
_CLOCK = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+(?:[ _][A-Z][a-z]+)?\b")
_PATH_NAMES = {"path", "file", "filename", "directory", "dir", "folder"}


def pick_tool(query: str, tools: Sequence[ToolSpec]) -> ToolCall | None:
    wanted = set(terms_of(query))
    best: tuple[int, str, dict[str, Any]] | None = None
    for spec in tools:
        if spec.source == "builtin":
            continue  # the built-in tools have their own rules
        own = spec.name.rpartition(".")[2]
        name_terms = set(terms_of(re.sub(r"[_\-.]|(?<=[a-z])(?=[A-Z])", " ", own)))
        description_terms = set(terms_of(spec.description)) - name_terms
        score = 2 * len(wanted & name_terms) + len(wanted & description_terms)
        if score < 2:
            continue
        arguments = fill_arguments(query, spec.parameters)
        if arguments is None:
            continue
        if best is None or (-score, spec.name) < (-best[0], best[1]):
            best = (score, spec.name, arguments)
    return ToolCall(name=best[1], arguments=best[2]) if best is not None else None


def fill_arguments(query: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """Arguments for every required parameter from the query, or None when one cannot be."""
    properties: dict[str, Any] = schema.get("properties") or {}
    required: list[str] = list(schema.get("required") or [])
    numbers = [match.group(0) for match in _NUMBER.finditer(query)]
    paths = [path.rstrip(".,;:!?") for path in _PATH.findall(query)]
    zones = _zones_in(query)
    arguments: dict[str, Any] = {}
    free_strings: list[str] = []
    for name in required:
        kind = (properties.get(name) or {}).get("type")
        lowered = name.lower()
        if kind in ("integer", "number"):
            if not numbers:
                return None
            value = _number(numbers.pop(0), kind)
            if value is None:
                return None
            arguments[name] = value
        elif kind == "string":
            if "timezone" in lowered or lowered in ("tz", "zone"):
                if not zones:
                    return None
                arguments[name] = zones.pop(0)
            elif lowered in _PATH_NAMES or lowered.endswith("path"):
                if not paths:
                    return None
                arguments[name] = paths.pop(0)
            elif lowered == "time":
                clock = _CLOCK.search(query)
                if clock is None:
                    return None
                arguments[name] = f"{int(clock.group(1)):02d}:{clock.group(2)}"
            else:
                free_strings.append(name)
        else:
            return None  # booleans, arrays, objects: no rule would guess them right
    if len(free_strings) > 1:
        return None
    for name in free_strings:
        arguments[name] = query.strip()
    # Optional numbers the query gives ("... of 3 seconds"), in the schema's order.
    for name, prop in properties.items():
        if (
            name in arguments
            or not numbers
            or (prop or {}).get("type") not in ("integer", "number")
        ):
            continue
        value = _number(numbers.pop(0), prop["type"])
        if value is not None:
            arguments[name] = value
    return arguments


def _number(text: str, kind: str) -> int | float | None:
    value = float(text)
    if kind == "integer":
        return int(value) if value.is_integer() else None
    return int(value) if value.is_integer() else value


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    import zoneinfo

    names: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        city = zone.rpartition("/")[2]
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/", "US/")):
            names.setdefault(city.lower(), zone)
    return names


def _zones_in(query: str) -> list[str]:
    names = _zone_names()
    found: list[str] = []
    for match in _CAPITALISED.finditer(query):
        key = match.group(0).replace(" ", "_").lower()
        zone = names.get(key) or names.get(key.partition("_")[0])
        if zone is not None and zone not in found:
            found.append(zone)
    return found
