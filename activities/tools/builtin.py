"""The built-in tools: calculator, search_docs, append_note, wait (one registry of them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from activities.tools.calculator import calculator_tool
from activities.tools.notes import append_note_tool
from activities.tools.registry import ToolRegistry
from activities.tools.search_docs import search_docs_tool
from activities.tools.wait import wait_tool


def default_registry(
    knowledge_dir: Path | str, notes_file: Path | str | None = None
) -> ToolRegistry:
    """The built-in tools; `append_note` writes to `notes_file` (a temporary file if unset)."""
    notes = (
        Path(notes_file) if notes_file else Path(tempfile.gettempdir()) / "durable-agent-notes.txt"
    )
    return ToolRegistry(
        [
            calculator_tool(),
            search_docs_tool(Path(knowledge_dir)),
            append_note_tool(notes),
            wait_tool(),
        ]
    )
