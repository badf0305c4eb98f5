"""Filling the one tool registry from its sources: built-in tools, the operator's tools file
(Python functions and MCP servers) and the `durable_agent.tools` entry point group.

    # tools.yaml (DURABLE_AGENT_TOOLS_FILE)
    tools:
      - name: lookup_order
        function: "mypkg.orders:lookup_order"
        description: Look up an order by its number.     # default: the docstring
        approval: always                                 # default: never
    mcp_servers:
      - name: time
        command: [mcp-server-time]
      - name: docs
        url: "http://127.0.0.1:3001/mcp"
        headers: {Authorization: "Bearer ${DOCS_TOKEN}"}
    approvals:                                           # any tool, by its full name
      append_note: never

Every source is the operator's (files, installed packages, environment); nothing a request
sends can add one. A bad entry stops start-up with a :class:`ToolConfigError` naming it: a
half-loaded registry would make runs fail later, one by one, for a reason nobody sees.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.tools.builtin import default_registry
from activities.tools.catalog import Approval
from activities.tools.functions import SignatureError, function_tool
from activities.tools.mcp import MCPServer, MCPServerConfig
from activities.tools.registry import Tool, ToolRegistry

ENTRY_POINT_GROUP = "durable_agent.tools"
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class ToolConfigError(Exception):
    """A tool source that cannot be loaded; the message names the entry and the reason."""

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"tool source {entry}: {reason}")
        self.entry = entry
        self.reason = reason


class FunctionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME)
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    description: str | None = None
    approval: Approval = Approval.NEVER


class ToolsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tools: list[FunctionEntry] = Field(default_factory=list)
    mcp_servers: list[MCPServerConfig] = Field(default_factory=list)
    approvals: dict[str, Approval] = Field(default_factory=dict)


def read_tools_file(path: Path | None) -> ToolsFile:
    if path is None or not path.exists():
        return ToolsFile()
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ToolConfigError(where, f"cannot be read: {exc}") from None
    try:
        config = ToolsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        entry = _entry_name(data, first["loc"])
        raise ToolConfigError(
            f"{where} {loc}{f' ({entry})' if entry else ''}", first["msg"]
        ) from None
    # Relative paths in the file are relative to the file, wherever the worker was started.
    folder = path.resolve().parent
    for server in config.mcp_servers:
        if server.command is not None and "/" in server.command[0]:
            server.command[0] = str(folder / server.command[0])
        server.cwd = folder / server.cwd if server.cwd is not None else folder
    return config


def _entry_name(data: Any, loc: tuple[Any, ...]) -> str | None:
    # "mcp_servers.1.url" -> the name of mcp_servers[1], to name the entry as people wrote it.
    if len(loc) >= 2 and isinstance(data, dict) and isinstance(loc[1], int):
        items = data.get(loc[0])
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            name = items[loc[1]].get("name")
            return str(name) if name is not None else None
    return None


def import_object(reference: str) -> Any:
    """`package.module:attribute.path` -> the object."""
    module_name, _, attribute = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def load_function(entry: FunctionEntry) -> Tool:
    where = f"tools[{entry.name}] ({entry.function})"
    try:
        func = import_object(entry.function)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raised
        raise ToolConfigError(where, f"cannot be imported: {type(exc).__name__}: {exc}") from None
    try:
        return function_tool(
            entry.name, func, description=entry.description, approval=entry.approval
        )
    except SignatureError as exc:
        raise ToolConfigError(where, f"unsupported signature: {exc}") from None


def entry_point_tools(
    entry_points: Callable[[], list[importlib.metadata.EntryPoint]] | None = None,
) -> list[Tool]:
    """Tools that installed packages contribute: `[project.entry-points."durable_agent.tools"]`,
    `name = "package.module:function"` (or an object that is already a `Tool`)."""
    found = (
        entry_points()
        if entry_points is not None
        else list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    )
    tools = []
    for point in sorted(found, key=lambda p: p.name):
        where = f"entry point {ENTRY_POINT_GROUP}:{point.name} ({point.value})"
        try:
            obj = point.load()
        except Exception as exc:
            reason = f"cannot be imported: {type(exc).__name__}: {exc}"
            raise ToolConfigError(where, reason) from None
        if isinstance(obj, Tool):
            tools.append(obj)
            continue
        if re.match(TOOL_NAME, point.name) is None:
            raise ToolConfigError(where, f"the name must match {TOOL_NAME}")
        try:
            # Approval `never` unless the tools file's `approvals` says otherwise.
            tools.append(function_tool(point.name, obj))
        except SignatureError as exc:
            raise ToolConfigError(where, f"unsupported signature: {exc}") from None
    return tools


def build_registry(
    *,
    knowledge_dir: Path,
    notes_file: Path | None,
    tools_file: Path | None,
    environ: Mapping[str, str],
    use_entry_points: bool = True,
    errlog_dir: Path | None = None,
    entry_points: Callable[[], list[importlib.metadata.EntryPoint]] | None = None,
) -> ToolRegistry:
    """The registry of every source, or a ToolConfigError naming the first bad entry."""
    builtin = default_registry(knowledge_dir, notes_file)
    config = read_tools_file(tools_file)
    owners: dict[str, str] = dict.fromkeys(builtin.names(), "a built-in tool")
    tools: list[Tool] = [builtin.get(name) for name in builtin.names()]

    def add(tool: Tool, where: str) -> None:
        if tool.name in owners:
            raise ToolConfigError(where, f"the name {tool.name!r} is taken by {owners[tool.name]}")
        owners[tool.name] = where
        tools.append(tool)

    for entry in config.tools:
        where = f"tools[{entry.name}] ({entry.function})"
        if entry.name in owners:  # before importing anything
            raise ToolConfigError(
                where, f"the name {entry.name!r} is taken by {owners[entry.name]}"
            )
        add(load_function(entry), where)
    if use_entry_points:
        for tool in entry_point_tools(entry_points):
            add(tool, f"entry point {ENTRY_POINT_GROUP}:{tool.name}")

    servers: list[MCPServer] = []
    for server in config.mcp_servers:
        where = f"mcp_servers[{server.name}]"
        if any(s.name == server.name for s in servers):
            raise ToolConfigError(where, "a server of that name is configured twice")
        missing = [name for name in server.references() if name not in environ]
        if missing:
            raise ToolConfigError(
                where, f"environment variable(s) {', '.join(missing)} not set (named by ${{...}})"
            )
        if server.command is not None and not _runnable(server.command[0]):
            raise ToolConfigError(where, f"command {server.command[0]!r} not found")
        errlog = errlog_dir / f"mcp-{server.name}.log" if errlog_dir is not None else None
        servers.append(MCPServer(server, environ, errlog))

    for name, approval in config.approvals.items():
        prefix, dot, _ = name.partition(".")
        if dot and any(s.name == prefix for s in servers):
            server_ = next(s for s in servers if s.name == prefix)
            server_.config.approvals[name.partition(".")[2]] = approval
            continue
        index = next((i for i, tool in enumerate(tools) if tool.name == name), None)
        if index is None:
            raise ToolConfigError(f"approvals[{name}]", "no tool of that name")
        tool = tools[index]
        tools[index] = Tool(
            name=tool.name,
            description=tool.description,
            args_model=tool.args_model,
            func=tool.func,
            source=tool.source,
            approval=approval,
            schema=tool.schema,
        )
    return ToolRegistry(tools, servers)


def _runnable(command: str) -> bool:
    if os.sep in command:
        return os.access(command, os.X_OK)
    return shutil.which(command) is not None
