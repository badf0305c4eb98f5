"""User tools in agent runs, against a real dev server, a real worker and real MCP servers
(mcp-server-time and server-everything over stdio, server-everything over streamable HTTP,
server-filesystem), plus a Python function from an installed package's entry point."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.llm import OfflineProvider
from activities.models import ContextInput, ContextOutput, Sufficiency, ToolCall
from activities.tools.registry import ToolRegistry
from activities.tools.sources import build_registry
from config import Settings
from tests.helpers import eventually
from tests.integration.runs import start_run, state_of, wait_for_status
from tests.mcp_servers.servers import HttpServer, children_running, kill, tools_yaml
from workflows.agent import AgentWorkflow
from workflows.graph import GraphWorkflow
from workflows.state import ApprovalDecision, ApprovalStatus, RunStatus

SECRET = "tok-5ecret-value-91x"


def registry(settings: Settings, tools_file: Path) -> ToolRegistry:
    return build_registry(
        knowledge_dir=settings.knowledge_dir,
        notes_file=settings.notes_file,
        tools_file=tools_file,
        environ={**os.environ, "MCP_TEST_TOKEN": SECRET},
        errlog_dir=tools_file.parent,
    )


@pytest.fixture
def tool_worker(worker: Any, settings: Settings, tmp_path: Path) -> Callable[..., Any]:
    """`async with tool_worker(http_url=...) as tools:` a worker whose registry has the MCP
    servers of tests/mcp_servers (closed, with its stdio servers, at the end)."""

    @asynccontextmanager
    async def run(http_url: str | None = None) -> AsyncIterator[ToolRegistry]:
        files = tmp_path / "files"
        files.mkdir(exist_ok=True)
        tools = registry(settings, tools_yaml(tmp_path, http_url=http_url, files_dir=files))
        try:
            async with worker(tools=tools):
                yield tools
        finally:
            await tools.aclose()

    return run


async def scheduled_activities(handle: Any) -> list[tuple[str, str]]:
    """(activity type, summary) of every activity the run scheduled, in order."""
    history = await handle.fetch_history()
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            summary = event.user_metadata.summary.data.decode().strip('"')
            found.append((attributes.activity_type.name, summary))
    return found


async def test_an_mcp_tool_over_stdio_answers_and_is_its_own_activity(
    client: Client, settings: Settings, tool_worker: Any
) -> None:
    async with tool_worker():
        handle = await start_run(client, settings, "What time is it in Tokyo?")
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED, state.errors
    assert state.answer is not None and "Asia/Tokyo" in state.answer
    assert "datetime" in state.answer
    call = state.tool_history[0]
    assert (call.name, call.arguments, call.ok) == (
        "time.get_current_time",
        {"timezone": "Asia/Tokyo"},
        True,
    )
    activities = await scheduled_activities(handle)
    # Listed once by a local activity (`local-tool-listing`): a marker, not a scheduled task.
    assert [name for name, _ in activities if name == "list_tools"] == []
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in (await handle.fetch_history()).events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert "core_local_activity" in markers
    assert ("run_tool", "tool-time.get_current_time") in activities
    assert state.tools is not None
    listed = {tool.name: tool for tool in state.tools.tools}
    assert listed["time.get_current_time"].source == "mcp:time"
    assert listed["lookup_order"].source == "python"

    # The listing is in the history: a replay asks no server (there is none configured now).
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[AgentWorkflow, GraphWorkflow], data_converter=pydantic_data_converter
    )
    await replayer.replay_workflow(history)


async def test_streamable_http_server_with_a_secret_header(
    client: Client, settings: Settings, tool_worker: Any, everything_http: HttpServer
) -> None:
    async with tool_worker(http_url=everything_http.url):
        handle = await start_run(client, settings, "Get the sum of 3 and 4")
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED, state.errors
    # Both servers offer get-sum: the first name wins (everything over stdio); the HTTP one is
    # listed and callable too.
    assert state.tool_history[0].name.endswith(".get-sum")
    assert "7" in (state.answer or "")
    assert state.tools is not None
    assert "web.get-sum" in {tool.name for tool in state.tools.tools}
    history = await handle.fetch_history()
    assert SECRET not in history.to_json()
    assert SECRET not in state.model_dump_json()


async def test_http_tool_called_directly_through_the_registry(
    settings: Settings, tmp_path: Path, everything_http: HttpServer
) -> None:
    from activities.tools.registry import ToolContext

    tools = registry(settings, tools_yaml(tmp_path, http_url=everything_http.url))
    try:
        result = await tools.get("web.echo")({"message": "over HTTP"}, ToolContext("k"))
    finally:
        await tools.aclose()
    assert "over HTTP" in result.text


async def test_an_mcp_error_result_is_a_permanent_failure_for_the_next_round(
    client: Client, settings: Settings, tool_worker: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "files" / "missing.txt"
    async with tool_worker():
        handle = await start_run(client, settings, f"Read the text file {missing}")
        state = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
    record = state.tool_history[0]
    assert record.name == "fs.read_text_file" and not record.ok
    assert "ENOENT" in record.result or "no such file" in record.result.lower()
    assert record.result in (state.question or "")  # reported to the next context round
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert max(attempts) == 1  # isError is final: never retried
    await handle.cancel()


async def test_a_killed_stdio_server_is_started_again(
    client: Client, settings: Settings, tool_worker: Any
) -> None:
    async with tool_worker() as tools:
        first = await (await start_run(client, settings, "What time is it in Paris?")).result()
        assert first.status is RunStatus.COMPLETED, first.errors
        servers = children_running("mcp-server-time", parent=os.getpid())
        assert servers, "the stdio server runs as the worker's child"
        for pid in servers:
            kill(pid)
        second = await (await start_run(client, settings, "What time is it in Lima?")).result()
        time_server = next(s for s in tools.sources if s.name == "time")
    assert second.status is RunStatus.COMPLETED, second.errors
    assert "America/Lima" in (second.answer or "")
    assert getattr(time_server, "connections", 0) >= 2


async def test_a_denied_call_never_reaches_the_server(
    client: Client, settings: Settings, tool_worker: Any, tmp_path: Path
) -> None:
    target = tmp_path / "files" / "denied.txt"
    async with tool_worker():
        handle = await start_run(client, settings, f"Write the file {target}")
        state = await wait_for_status(handle, RunStatus.WAITING_FOR_APPROVAL)
        (request,) = state.approvals
        assert request.tool == "fs.write_file"  # destructive: `always` by default
        assert request.arguments["path"] == str(target)
        # An unknown id and a bad reason are refused before anything is recorded.
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update(
                AgentWorkflow.submit_approval, ApprovalDecision(approval_id="nope", approve=True)
            )
        assert getattr(unknown.value.cause, "type", None) == "ApprovalNotFound"
        decided = await handle.execute_update(
            AgentWorkflow.submit_approval,
            ApprovalDecision(approval_id=request.id, approve=False, reason="not that file"),
        )
        assert decided.decision is ApprovalStatus.DENIED
        with pytest.raises(WorkflowUpdateFailedError) as again:
            await handle.execute_update(
                AgentWorkflow.submit_approval,
                ApprovalDecision(approval_id=request.id, approve=True),
            )
        assert getattr(again.value.cause, "type", None) == "InvalidState"
        state = await wait_for_status(handle, RunStatus.WAITING_FOR_INPUT)
        await handle.cancel()
    assert not target.exists()
    record = state.tool_history[0]
    assert not record.ok and "denied by a person: not that file" in record.result
    assert "denied" in (state.question or "")
    assert ("run_tool", "tool-fs.write_file") not in await scheduled_activities(handle)


async def test_an_approved_call_runs_once_decided_by_signal(
    client: Client, settings: Settings, tool_worker: Any, tmp_path: Path
) -> None:
    target = tmp_path / "files" / "approved.txt"
    async with tool_worker():
        handle = await start_run(client, settings, f"Write the file {target}")
        state = await wait_for_status(handle, RunStatus.WAITING_FOR_APPROVAL)
        await handle.signal(
            AgentWorkflow.decide_approval, {"approval_id": state.approvals[0].id, "approve": True}
        )
        state = await handle.result()
    assert state.status is RunStatus.COMPLETED, state.errors
    assert target.read_text() == f"Write the file {target}"
    assert state.approvals[0].status is ApprovalStatus.APPROVED
    kinds = [event.kind for event in state.events]
    assert kinds.count("approval") == 2  # requested, then decided


async def test_no_decision_within_the_input_timeout_fails_the_run(
    client: Client, settings: Settings, tool_worker: Any, tmp_path: Path
) -> None:
    target = tmp_path / "files" / "late.txt"
    async with tool_worker():
        handle = await start_run(client, settings, f"Write the file {target}", input_timeout_s=2)
        await wait_for_status(handle, RunStatus.WAITING_FOR_APPROVAL)
        state = await eventually(
            lambda: state_of(handle), lambda s: s.status is RunStatus.FAILED, what="failed"
        )
    assert "no decision on the call of fs.write_file arrived within 2 seconds" in state.errors[-1]
    assert state.approvals[0].status is ApprovalStatus.EXPIRED
    assert not target.exists()


async def test_a_python_function_from_an_entry_point_runs_in_a_thread(
    client: Client, settings: Settings, tool_worker: Any
) -> None:
    async with tool_worker():
        state = await (await start_run(client, settings, "Look up order 42")).result()
    assert state.status is RunStatus.COMPLETED, state.errors
    assert state.tool_history[0].name == "lookup_order"
    assert state.tool_history[0].arguments == {"order_id": 42}
    assert "blue teapot" in (state.answer or "")
    assert '"thread":"worker"' in state.tool_history[0].result


class _TwoWrites(OfflineProvider):
    """Proposes two writes in one round (parallel calls), then has enough."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def assess(self, req: ContextInput, tools: ToolRegistry) -> ContextOutput:
        if req.tool_history:
            return ContextOutput(sufficiency=Sufficiency.SUFFICIENT)
        calls = [
            ToolCall(
                name="fs.write_file", arguments={"path": str(self.folder / name), "content": name}
            )
            for name in ("one.txt", "two.txt")
        ]
        return ContextOutput(sufficiency=Sufficiency.INSUFFICIENT, tool_calls=calls)


async def test_parallel_calls_are_decided_one_by_one(
    client: Client, settings: Settings, worker: Any, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    tools = registry(settings, tools_yaml(tmp_path, files_dir=files))
    try:
        async with worker(provider=_TwoWrites(files), tools=tools):
            handle = await start_run(client, settings, "Write two files")
            state = await wait_for_status(handle, RunStatus.WAITING_FOR_APPROVAL)
            first, second = state.approvals
            await handle.execute_update(
                AgentWorkflow.submit_approval,
                ApprovalDecision(approval_id=first.id, approve=True),
            )
            state = await state_of(handle)
            assert state.status is RunStatus.WAITING_FOR_APPROVAL  # one still pending
            assert not (files / "one.txt").exists()  # the round waits for every decision
            decided = await handle.execute_update(
                AgentWorkflow.submit_approval,
                ApprovalDecision(approval_id=second.id, approve=False, reason="one is enough"),
            )
            assert decided.status is RunStatus.RUNNING
            state = await handle.result()
    finally:
        await tools.aclose()
    assert state.status is RunStatus.COMPLETED, state.errors
    assert (files / "one.txt").read_text() == "one.txt"
    assert not (files / "two.txt").exists()
    results = {record.arguments["path"]: record for record in state.tool_history}
    assert results[str(files / "two.txt")].result.startswith("denied by a person: one is enough")


async def test_a_run_continued_as_new_while_waiting_for_approval_still_waits(
    client: Client, settings: Settings, tool_worker: Any, tmp_path: Path
) -> None:
    target = tmp_path / "files" / "after-handover.txt"
    async with tool_worker():
        started = await start_run(client, settings, f"Write the file {target}", history_threshold=1)
        latest = client.get_workflow_handle_for(AgentWorkflow.run, started.id)
        await wait_for_status(latest, RunStatus.WAITING_FOR_APPROVAL)
        first_run = (await latest.describe()).run_id
        for _ in range(12):  # stray signals grow the waiting run's history past its margin
            await latest.signal("decide_approval", {"approval_id": "approval-9", "approve": True})
        await eventually(
            lambda: latest.describe(), lambda d: d.run_id != first_run, what="a hand-over"
        )
        state = await wait_for_status(latest, RunStatus.WAITING_FOR_APPROVAL)
        assert state.continued_as_new >= 1 and state.approvals[0].status is ApprovalStatus.PENDING
        await latest.signal("decide_approval", {"approval_id": "approval-1", "approve": True})
        state = await latest.result()
    assert state.status is RunStatus.COMPLETED, state.errors
    assert target.exists()
