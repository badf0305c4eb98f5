"""Tool sources without a server: argument models from signatures, every bad entry, secrets,
approval policies and the offline provider's choice of a user tool."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from activities.offline_tools import fill_arguments, pick_tool
from activities.tools.catalog import Approval, ToolSpec, needs_approval
from activities.tools.functions import SignatureError, args_model_of, function_tool
from activities.tools.mcp import MCPServer, MCPServerConfig, MCPUnavailable, Redactor, expand
from activities.tools.registry import ToolContext, ToolError
from activities.tools.sources import ToolConfigError, build_registry, entry_point_tools
from config import PROJECT_ROOT

KNOWLEDGE = PROJECT_ROOT / "activities" / "knowledge"
CTX = ToolContext("key")


class Address(BaseModel):
    city: str
    zip: str = Field(pattern=r"^\d{5}$")


def ship(
    order_id: int,
    to: Address,
    speed: Literal["slow", "fast"] = "slow",
    on: date | None = None,
    tags: list[str] | None = None,
) -> str:
    """Ship an order.

    Longer text that is not part of the description.
    """
    return f"{order_id} to {to.city} ({speed}, {on}, {tags})"


def test_argument_model_comes_from_the_signature() -> None:
    schema = args_model_of(ship, "ship_args").model_json_schema()
    assert schema["required"] == ["order_id", "to"]
    assert schema["properties"]["order_id"]["type"] == "integer"
    assert schema["properties"]["speed"]["enum"] == ["slow", "fast"]
    assert schema["properties"]["speed"]["default"] == "slow"
    assert schema["additionalProperties"] is False
    assert "Address" in schema["$defs"]
    tool = function_tool("ship", ship)
    assert tool.description == "Ship an order."
    assert tool.spec().source == "python"


async def test_arguments_are_validated_and_typed() -> None:
    tool = function_tool("ship", ship)
    result = await tool(
        {"order_id": "7", "to": {"city": "Lyon", "zip": "69001"}, "on": "2026-05-04"}, CTX
    )
    assert result.text == "7 to Lyon (slow, 2026-05-04, None)"
    with pytest.raises(ToolError, match="to.zip"):
        await tool({"order_id": 7, "to": {"city": "Lyon", "zip": "x"}}, CTX)
    with pytest.raises(ToolError, match="Extra inputs"):
        await tool({"order_id": 7, "to": {"city": "L", "zip": "69001"}, "extra": 1}, CTX)


async def test_sync_functions_run_in_a_thread_async_ones_on_the_loop() -> None:
    def where() -> dict[str, Any]:
        """Which thread."""
        return {"main": threading.current_thread() is threading.main_thread()}

    async def where_async(ctx: ToolContext) -> str:
        """Which loop, and the call's context."""
        await asyncio.sleep(0)
        return f"loop, {ctx.idempotency_key}"

    assert (await function_tool("w", where)({}, CTX)).text == '{"main":false}'
    assert (await function_tool("a", where_async)({}, CTX)).text == "loop, key"
    assert "ctx" not in function_tool("a", where_async).spec().parameters.get("properties", {})


@pytest.mark.parametrize(
    ("func", "problem"),
    [
        (lambda *args: None, "*args"),
        (lambda **kw: None, "**kw"),
        (eval("lambda x, /: None"), "positional-only"),  # noqa: S307 - a literal, for the syntax
        (lambda x: None, "no type hint"),
    ],
)
def test_unsupported_signatures(func: Any, problem: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(problem)):
        function_tool("bad", func)


def takes_varargs(*names: str) -> str:
    """A signature no tool can have."""
    return ",".join(names)


def build(tmp_path: Path, text: str, **kwargs: Any) -> Any:
    path = tmp_path / "tools.yaml"
    path.write_text(text, encoding="utf-8")
    return build_registry(
        knowledge_dir=KNOWLEDGE,
        notes_file=None,
        tools_file=path,
        environ=kwargs.pop("environ", {}),
        use_entry_points=kwargs.pop("use_entry_points", False),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "tools: [{name: gone, function: 'no_such_module:f'}]",
            ["tools[gone]", "no_such_module", "cannot be imported", "ModuleNotFoundError"],
        ),
        (
            "tools: [{name: gone, function: 'json:no_such_function'}]",
            ["tools[gone]", "json:no_such_function", "AttributeError"],
        ),
        (
            "tools: [{name: calculator, function: 'json:dumps'}]",
            ["tools[calculator]", "taken by a built-in tool"],
        ),
        (
            "tools: [{name: a, function: 'tests.unit.test_tool_sources:takes_varargs'}]",
            ["tools[a]", "unsupported signature", "*names"],
        ),
        (
            "tools: [{name: 'has.dot', function: 'json:dumps'}]",
            ["tools.0.name", "(has.dot)", "pattern"],
        ),
        (
            "mcp_servers: [{name: x, command: [a], url: 'http://h/mcp'}]",
            ["mcp_servers.0", "(x)", "exactly one of"],
        ),
        (
            "mcp_servers: [{name: x, command: [no-such-command-anywhere]}]",
            ["mcp_servers[x]", "not found"],
        ),
        (
            "mcp_servers: [{name: x, url: 'http://h/mcp', headers: {A: 'Bearer ${NOPE}'}}]",
            ["mcp_servers[x]", "NOPE", "not set"],
        ),
        (
            "mcp_servers: [{name: x, url: 'http://h/mcp'}, {name: x, url: 'http://i/mcp'}]",
            ["mcp_servers[x]", "configured twice"],
        ),
        ("approvals: {nothing_here: always}", ["approvals[nothing_here]", "no tool"]),
        ("tools: [{name: a, function: 'json:dumps', approval: maybe}]", ["approval", "(a)"]),
        ("surprise: 1", ["surprise", "Extra inputs"]),
        ("tools: [unclosed", ["tools.yaml", "cannot be read"]),
    ],
)
def test_every_bad_entry_is_named(tmp_path: Path, text: str, names: list[str]) -> None:
    with pytest.raises(ToolConfigError) as caught:
        build(tmp_path, text)
    for name in names:
        assert name in str(caught.value)


def test_an_entry_point_that_clashes_or_breaks_is_named(tmp_path: Path) -> None:
    def points(*specs: tuple[str, str]) -> Any:
        return lambda: [
            importlib.metadata.EntryPoint(name, value, "durable_agent.tools")
            for name, value in specs
        ]

    with pytest.raises(ToolConfigError, match=r"entry point durable_agent.tools:search_docs"):
        build(
            tmp_path, "", use_entry_points=True, entry_points=points(("search_docs", "json:dumps"))
        )
    with pytest.raises(ToolConfigError, match=r"broken \(nowhere:f\).*cannot be imported"):
        entry_point_tools(points(("broken", "nowhere:f")))
    # The test package installed by `make install` contributes `lookup_order`.
    assert "lookup_order" in [tool.name for tool in entry_point_tools()]


def test_the_worker_does_not_start_with_a_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("tools: [{name: gone, function: 'no_such_module:f'}]\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=PROJECT_ROOT,
        env={"DURABLE_AGENT_TOOLS_FILE": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "worker not started" in done.stderr
    assert "tools[gone] (no_such_module:f)" in done.stderr


def test_secrets_are_expanded_in_the_worker_and_redacted_from_messages() -> None:
    assert expand("Bearer ${TOKEN}", {"TOKEN": "s3cr3t-v"}) == "Bearer s3cr3t-v"
    with pytest.raises(KeyError):
        expand("${MISSING}", {})
    redact = Redactor(["s3cr3t-v", "ab"])
    assert redact("header Bearer s3cr3t-v, ab") == "header Bearer ***, ab"


async def test_an_unreachable_server_is_transient_and_never_shows_its_secret() -> None:
    config = MCPServerConfig(
        name="down",
        url="http://127.0.0.1:9/mcp?key=${KEY}",
        headers={"Authorization": "Bearer ${KEY}"},
        timeout_s=5,
    )
    server = MCPServer(config, {"KEY": "very-secret-key"})
    with pytest.raises(MCPUnavailable) as caught:
        await server.call("echo", {})
    assert "very-secret-key" not in str(caught.value)
    assert "down" in str(caught.value)


def test_approval_policies() -> None:
    specs = [
        ToolSpec(name="append_note", approval=Approval.ALWAYS),
        ToolSpec(name="calculator"),
    ]
    assert needs_approval(specs, "append_note")
    assert not needs_approval(specs, "calculator")
    assert not needs_approval(specs, "unknown")
    assert not needs_approval(None, "append_note")  # runs that never listed their tools
    server = MCPServer(MCPServerConfig(name="s", url="http://h/mcp"), {})
    assert server.approval_of("rm", destructive=True) is Approval.ALWAYS
    assert server.approval_of("ls", destructive=False) is Approval.NEVER
    server.config.approvals["ls"] = Approval.ALWAYS
    server.config.approval = Approval.NEVER
    assert server.approval_of("ls", destructive=False) is Approval.ALWAYS
    assert server.approval_of("rm", destructive=True) is Approval.NEVER


def test_operator_approvals_override_defaults(tmp_path: Path) -> None:
    tools = build(tmp_path, "approvals: {append_note: never, calculator: always}\n")
    assert tools.get("append_note").approval is Approval.NEVER
    assert tools.get("calculator").approval is Approval.ALWAYS
    assert build(tmp_path, "").get("append_note").approval is Approval.ALWAYS


def _spec(name: str, description: str, **properties: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        source="mcp:x",
        description=description,
        parameters={
            "type": "object",
            "properties": {key: {"type": kind} for key, kind in properties.items()},
            "required": list(properties),
        },
    )


def test_the_offline_provider_picks_the_tool_a_query_names() -> None:
    tools = [
        _spec(
            "time.get_current_time", "Get current time in a specific timezone", timezone="string"
        ),
        _spec(
            "time.convert_time",
            "Convert time between timezones",
            source_timezone="string",
            time="string",
            target_timezone="string",
        ),
        _spec("e.get-sum", "Returns the sum of two numbers", a="number", b="number"),
        ToolSpec(name="calculator", description="Evaluate arithmetic time sum"),
    ]
    picked = pick_tool("What time is it in Tokyo?", tools)
    assert picked is not None and picked.name == "time.get_current_time"
    assert picked.arguments == {"timezone": "Asia/Tokyo"}
    converted = pick_tool("Convert 16:30 time from Tokyo to London", tools)
    assert converted is not None and converted.arguments == {
        "source_timezone": "Asia/Tokyo",
        "time": "16:30",
        "target_timezone": "Europe/London",
    }
    assert pick_tool("What is the sum of 2 and 3.5?", tools) is not None
    assert pick_tool("Plan my trip to Lisbon", tools) is None  # names no tool
    assert pick_tool("What time is it?", tools) is None  # no city: cannot be filled
    assert (
        fill_arguments("x", {"properties": {"flag": {"type": "boolean"}}, "required": ["flag"]})
        is None
    )
