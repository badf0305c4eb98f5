"""The tool registry: tools by name, each with a pydantic argument model (or, for an MCP tool,
the server's JSON Schema).

A tool is a plain async function ``(args, ctx) -> ToolResult``. It raises :class:`ToolError`
for a permanent failure (bad arguments, nothing to compute); anything else is treated as
transient and retried by Temporal.

Tools come from several sources (``activities/tools/sources.py`` fills the registry): built-in
tools, Python functions (a tools file, the ``durable_agent.tools`` entry point group) and MCP
servers, whose tools are named ``<server>.<tool>`` and resolved when they are called.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from activities.tools.catalog import Approval, ToolCatalog, ToolSpec

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
    # None: the arguments go to the tool as a dict (an MCP server validates its own).
    args_model: type[BaseModel] | None
    func: ToolFunc
    source: str = "builtin"
    approval: Approval = Approval.NEVER
    # The JSON Schema of the arguments when there is no args_model.
    schema: dict[str, Any] | None = None

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The arguments' JSON Schema. Generated once: every run lists the tools, and pydantic
        generating each schema again was a tenth of a busy worker's CPU."""
        if self.args_model is not None:
            return self.args_model.model_json_schema()
        return self.schema or {"type": "object"}

    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name,
            source=self.source,
            description=self.description,
            parameters=self.parameters,
            approval=self.approval,
        )

    async def __call__(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        args: Any = arguments
        if self.args_model is not None:
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


class ToolSource(Protocol):
    """A source whose tools are known only by asking it (an MCP server): `<prefix>.<tool>`."""

    name: str

    async def list_tools(self) -> list[Tool]: ...

    def tool(self, name: str) -> Tool: ...

    async def aclose(self) -> None: ...


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = (), sources: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._sources: dict[str, ToolSource] = {}
        for tool in tools:
            self.register(tool)
        for source in sources:
            self.add_source(source)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def add_source(self, source: ToolSource) -> None:
        if source.name in self._sources:
            raise ValueError(f"MCP server {source.name!r} is configured twice")
        self._sources[source.name] = source

    @property
    def sources(self) -> list[ToolSource]:
        return list(self._sources.values())

    def get(self, name: str) -> Tool:
        if name in self._tools:
            return self._tools[name]
        prefix, dot, rest = name.partition(".")
        if dot and rest and prefix in self._sources:
            return self._sources[prefix].tool(rest)
        raise ToolError(f"unknown tool {name!r}; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        """The tools known without asking a server (MCP tools are listed by `catalog`)."""
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        prefix, dot, rest = name.partition(".")
        return name in self._tools or (bool(dot and rest) and prefix in self._sources)

    async def catalog(self, timeout_s: float = 20.0) -> ToolCatalog:
        """Every tool, MCP servers asked in parallel. A server that cannot be listed within
        `timeout_s` is reported in `unavailable`, not fatal: the run goes on without it."""

        async def listed(source: ToolSource) -> list[Tool] | str:
            try:
                return await asyncio.wait_for(source.list_tools(), timeout_s)
            except TimeoutError:
                return f"no answer within {timeout_s:g}s"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"[:300]

        specs = [self._tools[name].spec() for name in self.names()]
        unavailable: dict[str, str] = {}
        results = await asyncio.gather(*(listed(source) for source in self._sources.values()))
        for source, result in zip(self._sources.values(), results, strict=True):
            if isinstance(result, str):
                unavailable[source.name] = result
            else:
                specs.extend(tool.spec() for tool in result)
        return ToolCatalog(tools=specs, unavailable=unavailable)

    async def aclose(self) -> None:
        for source in self._sources.values():
            await source.aclose()
