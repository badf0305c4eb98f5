"""Run metrics recorded from workflow code: status transitions, stage durations, run durations.

Recorded through `workflow.metric_meter()`, which the SDK silences while a workflow replays, so
a run's metrics count each transition once however often its history is replayed (a worker
restart, a cache eviction, a query of a closed run). Recording adds no command to the history:
no `workflow.patched` is needed. Durations come from `workflow.now()` (the workflow's own clock),
so they are what the history says, not what a replay takes.

The worker exports them on its Prometheus endpoint (`docs/operations.md` says what each means).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

STATUS_TRANSITIONS = "durable_agent_run_status_transitions"
STAGE_DURATION = "durable_agent_run_stage_duration_seconds"
RUN_DURATION = "durable_agent_run_duration_seconds"


def status_changed(kind: str, status: str, created_at: datetime, terminal: bool) -> None:
    meter = workflow.metric_meter()
    meter.create_counter(STATUS_TRANSITIONS, "runs entering each status", "1").add(
        1, {"kind": kind, "status": status}
    )
    if terminal:
        seconds = (workflow.now() - created_at).total_seconds()
        meter.create_histogram_float(
            RUN_DURATION, "from start to completed, failed or cancelled", "s"
        ).record(max(seconds, 0.0), {"kind": kind, "status": status})


def stage_left(kind: str, stage: str, since: datetime | None) -> None:
    if since is None:
        return
    seconds = (workflow.now() - since).total_seconds()
    workflow.metric_meter().create_histogram_float(
        STAGE_DURATION, "time a run spent in a stage", "s"
    ).record(max(seconds, 0.0), {"kind": kind, "stage": stage})
