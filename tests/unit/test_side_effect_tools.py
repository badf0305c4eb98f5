from pathlib import Path

from activities.tools.notes import append_once


def test_a_note_is_written_once_per_idempotency_key(tmp_path: Path) -> None:
    notes = tmp_path / "sub" / "notes.txt"
    assert append_once(notes, "wf-1/3", "first") is True
    assert append_once(notes, "wf-1/3", "first, retried") is False  # a retry of the same call
    assert append_once(notes, "wf-1/4", "second\nline") is True
    assert notes.read_text().splitlines() == ["wf-1/3\tfirst", "wf-1/4\tsecond line"]
