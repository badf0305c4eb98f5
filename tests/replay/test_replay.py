"""Recorded histories of every agent path replay on the current workflow code.

A failure here means a change to AgentWorkflow would break runs that are in flight: guard the
change with `workflow.patched(...)`, or, if no old run can exist, re-record
(`make record-histories`) and say so in the commit.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from codec import payload_codec
from plugin import DurableAgentPlugin

HISTORIES = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*.json"))


def test_every_path_has_a_recorded_history() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "agent_chat",
        "agent_calculator",
        "agent_search_docs",
        "agent_reflection_retry",
        "agent_input_by_update",
        "agent_input_by_signal_after_malformed",
        "agent_pause_resume",
        "agent_cancel_waiting",
        "agent_input_timeout",
        "agent_continue_as_new",
        "agent_activity_failure",
        "graph_triage",
        "graph_draft_review_loop",
        "graph_approval_input",
        # recorded after the worker began enforcing limits (workflow.patched markers)
        "agent_chat_checked",
        "graph_triage_limits",
        "graph_inline_loop",
        "graph_parallel_bound",
        "graph_unrunnable",
        # recorded with the v2 graph engine
        "graph_questions_by_node",
        "graph_breakpoint_step",
        "graph_question_timeout",
        "graph_loop_continue_as_new",
        "graph_agent_child",
        "graph_tool_denied",
        # input sent as the gateway sends it: a signal with an input id, repeated
        "agent_input_by_signal_with_id",
        # recorded with agent definitions and `refuse-empty-answer`
        "agent_extractor_definition",
        "agent_support_definition",
        "agent_blank_chat_fallthrough",
        # search attributes set at start (`attributes_at_start`); fast mode (local activities)
        "agent_lean_calculator",
        "agent_fast_calculator",
        "graph_fast_tools",
        # baseline 2: tools listed by a local activity
        "agent_baseline2_calculator",
        "graph_baseline2_tools",
    } <= names


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = _load(path)
    replayer = Replayer(workflows=[], plugins=[DurableAgentPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    assert len(history.events) > 3


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays_in_the_strict_sandbox(path: Path) -> None:
    # Workers pass our modules through the sandbox (loaded once, not once per run), so the
    # sandbox no longer watches what they call. Here it does, as by the SDK's default: the
    # workflow modules re-imported inside it, a call to a clock, random source or I/O refused.
    replayer = Replayer(workflows=[], plugins=[DurableAgentPlugin(strict_sandbox=True)])
    result = await replayer.replay_workflow(_load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays_with_the_codec_on(path: Path) -> None:
    # Turning encryption on must not break runs recorded before: payloads in clear pass
    # through the codec (an encrypted run's replay: tests/e2e/test_payload_codec.py).
    codec = payload_codec("k1:" + base64.b64encode(b"k" * 32).decode())
    replayer = Replayer(workflows=[], plugins=[DurableAgentPlugin(codec=codec)])
    result = await replayer.replay_workflow(_load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_a_run_started_at_the_current_baseline_records_no_patch_marker_and_few_upserts() -> None:
    # Baseline runs (every run the gateway starts) take the baseline's patches as applied and
    # find their search attributes set at start: no `core_patch` marker, no upsert of
    # TemporalChangeVersion or RunKind, and the last stage goes with the end status.
    history = _load(HISTORIES[0].parent / "agent_lean_calculator.json")
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert markers == []
    upserts = [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    assert upserts == [
        {"RunStatus"},
        {"RunStage"},
        {"RunStage"},
        {"RunStage"},
        {"RunStatus", "RunStage"},
    ]
