"""What does running an MCP tool call as a Temporal activity cost, per call, against calling the
same server directly?

    python -m bench.mcp_overhead [--calls 100] [--server time|everything]

One run measures, against one MCP server over stdio (mcp-server-time's get_current_time, or
server-everything's echo), each p50 over `--calls` sequential calls:

- direct:   the official `mcp` client's `call_tool` on an open session (the baseline);
- registry: the same call through our tool registry (argument handling, error mapping, the
            persistent connection), still in-process;
- activity: the `run_tool` activity from a workflow on a real worker and dev server: one call's
            cycle, taken as the time between consecutive activity completions in the history
            (schedule, dispatch, the call, completion, the next workflow task).

and prints each against the direct baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.context import ContextActivities
    from activities.models import ToolCallInput

CALLS = {
    "time": ("get_current_time", {"timezone": "Asia/Tokyo"}),
    "everything": ("echo", {"message": "hello"}),
}


@workflow.defn
class ToolCallLoop:
    """`calls` sequential calls of one tool, each the `run_tool` activity agent runs use."""

    @workflow.run
    async def run(self, name: str, arguments: dict[str, object], calls: int) -> int:
        for _ in range(calls):
            await workflow.execute_activity_method(
                ContextActivities.run_tool,
                ToolCallInput(name=name, arguments=arguments),
                start_to_close_timeout=timedelta(minutes=1),
                heartbeat_timeout=timedelta(seconds=5),
            )
        return calls


def _command(server: str) -> list[str]:
    if server == "time":
        return [str(Path(sys.executable).parent / "mcp-server-time")]
    root = Path(__file__).resolve().parent.parent
    return [str(root / "tests/mcp_servers/node_modules/.bin/mcp-server-everything"), "stdio"]


async def _direct(server: str, calls: int) -> list[float]:
    from mcp import Client, StdioServerParameters

    command = _command(server)
    tool, arguments = CALLS[server]
    times = []
    params = StdioServerParameters(command=command[0], args=command[1:])
    async with Client(params, cache=None) as client:
        await client.call_tool(tool, arguments)  # warm
        for _ in range(calls):
            started = time.perf_counter()
            await client.call_tool(tool, arguments)
            times.append(time.perf_counter() - started)
    return times


async def _registry(server: str, calls: int, tools_file: Path) -> list[float]:
    from activities.tools.registry import ToolContext
    from activities.tools.sources import build_registry
    from config import Settings

    settings = Settings(tools_file=tools_file, tool_entry_points=False)
    registry = build_registry(
        knowledge_dir=settings.knowledge_dir,
        notes_file=None,
        tools_file=tools_file,
        environ=os.environ,
        use_entry_points=False,
    )
    tool, arguments = CALLS[server]
    call = registry.get(f"{server}.{tool}")
    times = []
    try:
        await call(arguments, ToolContext("bench"))
        for _ in range(calls):
            started = time.perf_counter()
            await call(arguments, ToolContext("bench"))
            times.append(time.perf_counter() - started)
    finally:
        await registry.aclose()
    return times


async def _activity(server: str, calls: int, tools_file: Path) -> tuple[list[float], list[float]]:
    from temporalio.api.enums.v1 import EventType
    from temporalio.testing import WorkflowEnvironment

    from config import Settings
    from devstack.processes import SQLITE_PRAGMAS, temporal_binary
    from temporal_client import connect
    from worker import build_worker

    tool, arguments = CALLS[server]
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=list(SQLITE_PRAGMAS),
    ) as env:
        target = env.client.service_client.config.target_host
        settings = Settings(
            temporal_address=target,
            task_queue=f"bench-{uuid.uuid4().hex}",
            tools_file=tools_file,
            tool_entry_points=False,
        )
        client = await connect(settings)
        worker = build_worker(client, settings, workflows=[ToolCallLoop])
        async with worker:
            handle = await client.start_workflow(
                ToolCallLoop.run,
                args=[f"{server}.{tool}", arguments, calls + 1],
                id=f"bench-{uuid.uuid4().hex}",
                task_queue=settings.task_queue,
            )
            await handle.result()
        history = await handle.fetch_history()
    completed: list[float] = []
    scheduled: dict[int, float] = {}
    inside: list[float] = []
    for event in history.events:
        stamp = event.event_time.ToNanoseconds() / 1e9
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = stamp
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            inside.append(stamp - scheduled[attributes.scheduled_event_id])
            completed.append(stamp)
    cycles = [b - a for a, b in zip(completed, completed[1:], strict=False)]
    return cycles, inside[1:]  # the first call connects to the server


def _p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--server", choices=sorted(CALLS), default="time")
    args = parser.parse_args()
    command = _command(args.server)
    with tempfile.TemporaryDirectory() as folder:
        tools_file = Path(folder) / "tools.yaml"
        tools_file.write_text(
            f"mcp_servers:\n  - name: {args.server}\n    command: {command!r}\n",
            encoding="utf-8",
        )
        direct = await _direct(args.server, args.calls)
        registry = await _registry(args.server, args.calls, tools_file)
        cycles, scheduled_to_completed = await _activity(args.server, args.calls, tools_file)
    base = _p50_ms(direct)
    tool, _ = CALLS[args.server]
    out = sys.stdout
    out.write(f"{args.server}.{tool} over stdio, p50 of {args.calls} sequential calls\n")
    rows = [
        ("direct (mcp client, open session)", direct),
        ("registry (our wrapper, in-process)", registry),
        ("activity: scheduled -> completed", scheduled_to_completed),
        ("activity: one call's full cycle", cycles),
    ]
    for label, values in rows:
        p50 = _p50_ms(values)
        out.write(f"  {label:38} {p50:8.2f} ms   {p50 / base:6.1f}x\n")
    overhead = _p50_ms(cycles) - base
    out.write(f"  overhead per call (cycle - direct): {overhead:.2f} ms\n")


if __name__ == "__main__":
    asyncio.run(main())
