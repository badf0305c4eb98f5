"""The tool registry: tools by name, each with a pydantic argument model.

A tool is a plain async function ``(args, ctx) -> ToolResult``. It raises :class:`ToolError`
for a permanent failure (bad arguments, nothing to compute); anything else is treated as
transient and retried by Temporal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

# A tool's result enters the run's history; Temporal refuses payloads over 2 MB on every retry.
MAX_RESULT_CHARS = 256 * 1024


class ToolError(Exception):
    """A permanent tool failure: retrying with the same arguments cannot succeed."""


@dataclass(frozen=True)
class ToolContext:
    # workflow id + run id + activity id: stable across retries of one call, different for every
    # call (activity ids start again after a continue-as-new, run ids do not repeat), so a tool
    # that writes somewhere can use it to apply its side effect exactly once.
    idempotency_key: str


@dataclass(frozen=True)
class ToolResult:
    text: str
    empty: bool = False


ToolFunc = Callable[[Any, ToolContext], Awaitable[ToolResult]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    func: ToolFunc

    async def __call__(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        try:
            args = self.args_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None
        result = await self.func(args, ctx)
        if len(result.text) > MAX_RESULT_CHARS:
            raise ToolError(
                f"{self.name} returned {len(result.text)} characters; the limit is "
                f"{MAX_RESULT_CHARS}"
            )
        return result


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(f"unknown tool {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools


def default_registry(knowledge_dir: Any, notes_file: Any = None) -> ToolRegistry:
    import tempfile
    from pathlib import Path

    from activities.tools.calculator import calculator_tool
    from activities.tools.notes import append_note_tool
    from activities.tools.search_docs import search_docs_tool
    from activities.tools.wait import wait_tool

    notes = (
        Path(notes_file) if notes_file else Path(tempfile.gettempdir()) / "durable-agent-notes.txt"
    )
    return ToolRegistry(
        [calculator_tool(), search_docs_tool(knowledge_dir), append_note_tool(notes), wait_tool()]
    )
