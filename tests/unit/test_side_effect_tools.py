from pathlib import Path

from activities.tools.notes import append_once


def test_a_note_is_written_once_per_idempotency_key(tmp_path: Path) -> None:
    notes = tmp_path / "sub" / "notes.txt"
    assert append_once(notes, "wf-1/3", "first") is True
    assert append_once(notes, "wf-1/3", "first, retried") is False  # a retry of the same call
    assert append_once(notes, "wf-1/4", "second\nline") is True
    assert notes.read_text().splitlines() == ["wf-1/3\tfirst", "wf-1/4\tsecond line"]


async def test_a_note_after_continue_as_new_is_not_taken_for_a_retry(tmp_path: Path) -> None:
    # Activity ids start again after a continue-as-new: the same workflow id and activity id then
    # name a new call, which must write its note (the run id tells the two apart).
    import dataclasses

    from temporalio.testing import ActivityEnvironment

    from activities.context import ContextActivities
    from activities.llm import OfflineProvider
    from activities.models import ToolCallInput
    from activities.tools.builtin import default_registry

    notes = tmp_path / "notes.txt"
    tools = ContextActivities(OfflineProvider(), default_registry(tmp_path, notes))
    for run_id, text in (("run-1", "before"), ("run-2", "after"), ("run-2", "after")):
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_id="wf", workflow_run_id=run_id)
        call = ToolCallInput(name="append_note", arguments={"text": text})
        await env.run(tools.run_tool, call)
    assert [line.split("\t")[1] for line in notes.read_text().splitlines()] == ["before", "after"]
