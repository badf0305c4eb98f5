"""MCP servers as tool sources, through the official `mcp` SDK (stdio or streamable HTTP).

One :class:`MCPServer` per configured server keeps one connection open for the worker's life and
serves every call and listing over it. A call that finds the connection dead (a stdio server
that exited or was killed, an HTTP server that went away) drops it and fails as a transient
error: Temporal retries the activity, and the retry connects again — for stdio, that starts the
server again. A tool result with `isError` is a permanent :class:`ToolError`; so are the
JSON-RPC errors no retry can fix (unknown tool, invalid parameters).

Secrets: values in `env` and `headers` may name environment variables (`${VAR}`). They are
expanded here, in the worker, when the connection is made; the configuration keeps the
reference, and every message that leaves this module (errors, logs) has the expanded values
replaced by `***`. Tool arguments and results are the only data that enter a run's history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities.tools.catalog import Approval
from activities.tools.registry import Tool, ToolContext, ToolError, ToolResult

logger = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SERVER_NAME = r"^[A-Za-z0-9_-]{1,64}$"
# JSON-RPC error codes a retry of the same request cannot fix.
_PERMANENT_CODES = {-32700, -32600, -32601, -32602}
# A result larger than this is refused (it would enter the run's history).
MAX_RESULT_CHARS = 256 * 1024


class MCPServerConfig(BaseModel):
    """One `mcp_servers` entry of the tools file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SERVER_NAME, description="Tools are named `<name>.<tool>`.")
    # stdio: the command and its arguments. streamable HTTP: the endpoint URL.
    command: list[str] | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")
    env: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    # The policy of every tool of the server; unset: `always` for the tools the server marks
    # destructive (annotations.destructiveHint), `never` for the others.
    approval: Approval | None = None
    # Per tool (the server's own name, without the prefix); wins over `approval`.
    approvals: dict[str, Approval] = Field(default_factory=dict)
    # One call's limit; past it the call fails as transient (and is retried).
    timeout_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (stdio) and `url` (streamable HTTP)")
        return self

    def references(self) -> list[str]:
        """The environment variables its `env` and `headers` name."""
        values = [*self.env.values(), *self.headers.values()]
        return sorted({name for value in values for name in _VARIABLE.findall(value)})


def expand(template: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` replaced from `environ` (a missing variable is an error naming it)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise KeyError(name)
        return environ[name]

    return _VARIABLE.sub(value, template)


class Redactor:
    """Replaces secret values in text that leaves the worker (errors, logs)."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class MCPUnavailable(Exception):
    """The server cannot be reached or its connection broke: transient, retried by Temporal."""


class MCPServer:
    """A configured MCP server: lists its tools and calls them over one kept connection."""

    def __init__(
        self,
        config: MCPServerConfig,
        environ: Mapping[str, str],
        errlog: Path | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._environ = environ
        self._errlog_path = errlog
        secrets = [environ[name] for name in config.references() if name in environ]
        self.redact = Redactor(secrets)
        self._client: Any = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        # How many connections were made (a restarted stdio server counts again).
        self.connections = 0
        # Policies from the last listing, by the server's own tool name.
        self._destructive: dict[str, bool] = {}

    # ---- tools -------------------------------------------------------------------------------

    def approval_of(self, tool: str, destructive: bool) -> Approval:
        if tool in self.config.approvals:
            return self.config.approvals[tool]
        if self.config.approval is not None:
            return self.config.approval
        return Approval.ALWAYS if destructive else Approval.NEVER

    async def list_tools(self) -> list[Tool]:
        try:
            return await self._list_tools()
        except MCPUnavailable:
            # A connection that died since its last use (a stdio server that exited): listing
            # happens once per run and has no retry of its own, so start the server again now.
            return await self._list_tools()

    async def _list_tools(self) -> list[Tool]:
        client = await self._connected()
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            while True:
                page = await asyncio.wait_for(
                    client.list_tools(cursor=cursor), self.config.timeout_s
                )
                for item in page.tools:
                    hint = bool(item.annotations and item.annotations.destructive_hint)
                    self._destructive[item.name] = hint
                    tools.append(
                        self._tool(item.name, item.description or "", dict(item.input_schema))
                    )
                cursor = page.next_cursor
                if not cursor:
                    return tools
        except Exception as exc:
            await self._drop()
            raise MCPUnavailable(self._describe(exc)) from None

    def tool(self, name: str) -> Tool:
        return self._tool(name, "", None)

    def _tool(self, name: str, description: str, schema: dict[str, Any] | None) -> Tool:
        async def _call(arguments: Any, ctx: ToolContext) -> ToolResult:
            return await self.call(name, arguments)

        return Tool(
            name=f"{self.name}.{name}",
            description=description,
            args_model=None,
            func=_call,
            source=f"mcp:{self.name}",
            approval=self.approval_of(name, self._destructive.get(name, False)),
            schema=schema,
        )

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolResult:
        from mcp import MCPError

        client = await self._connected()
        try:
            result = await asyncio.wait_for(
                client.call_tool(tool, arguments), self.config.timeout_s
            )
        except MCPError as exc:
            if exc.code in _PERMANENT_CODES:
                raise ToolError(self.redact(f"{self.name}.{tool}: {exc.error.message}")) from None
            await self._drop()
            raise MCPUnavailable(self._describe(exc)) from None
        except TimeoutError:
            await self._drop()
            raise MCPUnavailable(
                f"MCP server {self.name!r} did not answer {tool} within {self.config.timeout_s:g}s"
            ) from None
        except Exception as exc:
            await self._drop()
            raise MCPUnavailable(self._describe(exc)) from None
        text = self.redact(_result_text(result))
        if result.is_error:
            raise ToolError(f"{self.name}.{tool}: {text[:2000] or 'the tool reported an error'}")
        if len(text) > MAX_RESULT_CHARS:
            raise ToolError(
                f"{self.name}.{tool} returned {len(text)} characters; the limit is "
                f"{MAX_RESULT_CHARS}"
            )
        return ToolResult(text=text, empty=not text.strip())

    # ---- the connection ----------------------------------------------------------------------

    def _describe(self, exc: BaseException) -> str:
        detail = str(exc) or type(exc).__name__
        return self.redact(f"MCP server {self.name!r} is unavailable: {detail}")[:500]

    async def _connected(self) -> Any:
        async with self._lock:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            await self._drop_locked()
            ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            self._holder = asyncio.create_task(self._hold(ready, self._stop))
            try:
                self._client = await asyncio.wait_for(ready, self.config.timeout_s)
            except Exception as exc:
                await self._drop_locked()
                raise MCPUnavailable(self._describe(exc)) from None
            self.connections += 1
            if self.connections > 1:
                logger.warning(
                    "MCP server %r reconnected (connection %d)", self.name, self.connections
                )
            return self._client

    async def _hold(self, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        """Own the connection: the SDK's transports must be entered and left in one task."""
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(self._make_client(stack))
                if not ready.done():
                    ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # the transport died (a killed server, a broken socket)
            if not ready.done():
                ready.set_exception(MCPUnavailable(self._describe(exc)))
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _make_client(self, stack: AsyncExitStack) -> Any:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        config = self.config
        try:
            env = {key: expand(value, self._environ) for key, value in config.env.items()}
            headers = {key: expand(value, self._environ) for key, value in config.headers.items()}
        except KeyError as missing:
            raise MCPUnavailable(f"environment variable {missing} is not set") from None
        if config.command is not None:
            params = StdioServerParameters(
                command=config.command[0],
                args=config.command[1:],
                env=env or None,
                cwd=config.cwd,
            )
            # The server's own stderr goes to its log file, never into the worker's log.
            errlog: TextIO = stack.enter_context(
                open(self._errlog_path, "a", encoding="utf-8")  # noqa: SIM115
                if self._errlog_path is not None
                else open("/dev/null", "w", encoding="utf-8")  # noqa: SIM115
            )
            return Client(stdio_client(params, errlog=errlog), cache=None)
        assert config.url is not None
        http = create_mcp_http_client(headers=headers or None)
        return Client(streamable_http_client(config.url, http_client=http), cache=None)

    async def _drop(self) -> None:
        async with self._lock:
            await self._drop_locked()

    async def _drop_locked(self) -> None:
        holder, stop = self._holder, self._stop
        self._client = self._holder = self._stop = None
        if holder is None:
            return
        if stop is not None:
            stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(holder), 5)
        except BaseException:  # a transport that will not close in time is left to die
            holder.cancel()

    async def aclose(self) -> None:
        await self._drop()


def _result_text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(block, 'uri', '')}]")
        elif kind == "resource":
            resource = getattr(block, "resource", None)
            parts.append(getattr(resource, "text", None) or f"[resource {resource}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)
