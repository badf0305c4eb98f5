"""The `append_note` tool: appends a line to a notes file — a side effect applied exactly once.

Temporal runs an activity at least once: a worker can die after the tool wrote but before the
result was recorded, and the retry runs the tool again. The tool therefore writes under an
idempotency key (workflow id + run id + activity id: the same for every attempt of one call,
new after a continue-as-new, which starts activity ids again) and skips the
write when that key is already in the file. The file is locked while it is checked and written.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from activities.tools.catalog import Approval
from activities.tools.registry import Tool, ToolContext, ToolResult


class AppendNoteArgs(BaseModel):
    text: str = Field(min_length=1, max_length=2000, description="The line to append.")

    @field_validator("text")
    @classmethod
    def _readable(cls, text: str) -> str:
        # A note nobody can read (spaces, NULs, control characters) is refused, not written.
        if not any(char.isprintable() and not char.isspace() for char in text):
            raise ValueError("a note must not be blank")
        return text


def append_once(path: Path, key: str, text: str) -> bool:
    """Append `key<TAB>text` unless a line with that key exists; True when it wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{key}\t{' '.join(text.split())}\n"
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            if any(existing.split("\t", 1)[0] == key for existing in handle):
                return False
            handle.write(line)
            handle.flush()
            return True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_note_tool(path: Path) -> Tool:
    async def _append(args: AppendNoteArgs, ctx: ToolContext) -> ToolResult:
        wrote = append_once(Path(path), ctx.idempotency_key, args.text)
        return ToolResult(text="noted" if wrote else "already noted")

    return Tool(
        name="append_note",
        description="Append a line of text to the notes file (exactly once per call).",
        args_model=AppendNoteArgs,
        func=_append,
        # A side effect outside the run: a person approves it unless the operator says not to.
        approval=Approval.ALWAYS,
    )
