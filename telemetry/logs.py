"""Logging for the worker and the gateway: plain text (the default) or one JSON object a line
(`DURABLE_AGENT_LOG_FORMAT=json`).

Every line written while an activity runs, or by `workflow.logger`, carries the run it is about
(`run_id`, which is the workflow id, `workflow_id`, `activity`, `attempt`), whichever logger
wrote it; a gateway line written while serving `/api/v1/runs/{run_id}/...` carries `run_id`.
`workflow.logger` is silent while a workflow replays (the SDK's default, `log_during_replay`
False), so a replay repeats no line.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RUN_FIELDS = ("run_id", "workflow_id", "activity", "attempt")

# The run a gateway request is about (set by the gateway's middleware).
current_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_run_id", default=None
)


class RunContext(logging.Filter):
    """Adds `run_id`, `workflow_id`, `activity`, `attempt` to records about a run.

    Sources, first found wins: the SDK's `temporal_activity` / `temporal_workflow` extras (set
    by `activity.logger` and `workflow.logger`), the activity running in this context (for any
    other logger: a library's, a tool's), the gateway request's run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _run_fields(record)
        for name in RUN_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name))
        return True


def _run_fields(record: logging.LogRecord) -> dict[str, Any]:
    details = getattr(record, "temporal_activity", None)
    if details is None and activity.in_activity():
        info = activity.info()
        details = {
            "workflow_id": info.workflow_id,
            "activity_type": info.activity_type,
            "attempt": info.attempt,
        }
    if isinstance(details, dict):
        return {
            "run_id": details.get("workflow_id"),
            "workflow_id": details.get("workflow_id"),
            "activity": details.get("activity_type"),
            "attempt": details.get("attempt"),
        }
    details = getattr(record, "temporal_workflow", None)
    if isinstance(details, dict):
        return {
            "run_id": details.get("workflow_id"),
            "workflow_id": details.get("workflow_id"),
            "activity": None,
            "attempt": details.get("attempt"),  # the workflow task's attempt
        }
    run_id = current_run_id.get()
    if run_id is not None:
        return {"run_id": run_id, "workflow_id": run_id}
    return {}


def json_formatter() -> logging.Formatter:
    # The SDK's own extras are flattened into the run fields above; leave the nested copies out.
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        reserved_attrs=[
            *RESERVED_ATTRS,
            "taskName",
            "temporal_activity",
            "temporal_workflow",
            "color_message",
        ],
    )


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Root logging for a process: every handler gets the run fields; JSON if asked."""
    handler = logging.StreamHandler()
    handler.addFilter(RunContext())
    if log_format == "json":
        handler.setFormatter(json_formatter())
        # The ids are fields of their own; the SDK's "(...)" suffix on the message would repeat
        # them.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
