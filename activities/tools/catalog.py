"""What a run knows about its tools: names, sources, argument schemas and approval policies.

Plain data and pure functions, safe in workflow code. The `list_tools` activity builds a
:class:`ToolCatalog` from the worker's registry (built-in tools, Python functions, MCP servers)
and the run records it, so a replay never depends on what a server answers later, and the
approval policy of every call is decided from the recorded entry (:func:`needs_approval`) —
by the agent workflow today, by a graph `tool` node executor the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Approval(StrEnum):
    """A tool's approval policy: `always` holds every call for a person's decision."""

    ALWAYS = "always"
    NEVER = "never"


class ToolSpec(BaseModel):
    """One tool as a run sees it (also what `GET /api/v1/tools` lists)."""

    name: str
    # "builtin", "python" (a function from the tools file or an entry point) or "mcp:<server>".
    source: str = "builtin"
    description: str = ""
    # The JSON Schema of the tool's arguments (an object schema).
    parameters: dict[str, Any] = Field(default_factory=dict)
    approval: Approval = Approval.NEVER


class ToolCatalog(BaseModel):
    """Every tool the worker offered when the run listed them. Output of `list_tools`."""

    tools: list[ToolSpec] = Field(default_factory=list)
    # MCP servers that could not be listed (name -> reason); their tools are absent this run.
    unavailable: dict[str, str] = Field(default_factory=dict)


class ListToolsInput(BaseModel):
    """Input of `list_tools` (empty today; a model so fields can be added later)."""


def find_tool(tools: Sequence[ToolSpec], name: str) -> ToolSpec | None:
    return next((tool for tool in tools if tool.name == name), None)


def needs_approval(tools: Sequence[ToolSpec] | None, name: str) -> bool:
    """Whether a call of `name` must wait for a person, by the run's recorded catalog.

    A run without a catalog (started before tools were listed) never asks. A tool missing from
    the catalog does not ask either: the call fails as an unknown tool, without side effects.
    """
    if not tools:
        return False
    spec = find_tool(tools, name)
    return spec is not None and spec.approval is Approval.ALWAYS
