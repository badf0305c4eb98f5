"""Where an activity of a run executes: `remote` (the default) or `local` (fast mode).

`remote` is a normal Temporal activity: scheduled on the task queue, taken by any worker, its
start and result each recorded in the run's history. A worker killed mid-attempt is noticed
by the heartbeat timeout and the attempt is retried on another worker.

`local` is a Temporal local activity: run by the worker that runs the workflow task, in the
same process, with no scheduling round trip and no task-queue hop; its result is recorded with
the workflow task that follows (one marker event instead of three events). What it gives up:

- A worker killed mid-attempt loses the attempt. Another worker replays the run and runs the
  activity again *from its start* (there is no heartbeat, so no progress is kept). Work is
  redone, never lost; a side effect of the killed attempt (a tool that sent an email) may
  therefore happen twice, as with any retry.
- The result is durable only once the workflow task completes: a crash between the activity
  finishing and that completion also redoes it.
- It runs on the worker that holds the run, not on any free worker; a long local activity
  keeps that worker's workflow task open (Temporal extends it), so keep it for quick steps.
- Temporal's UI shows it as a marker once it has ended, not as a pending activity while it
  runs.

Choose it per node (`execution: local` on an llm or tool node), per graph (the default of its
nodes) or per agent (every stage and tool call of its runs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

Execution = Literal["remote", "local"]
OutT = TypeVar("OutT")

EXECUTION_DESCRIPTION = (
    "Where activities run: `remote` (default: Temporal activities on any worker) or `local` "
    "(fast mode: local activities in the worker running the run; an attempt cut short by a "
    "crash is redone from its start)"
)

# What a local activity takes of an activity's config (no heartbeat, no task queue, no
# priority: it never leaves the worker).
_LOCAL_KEYS = (
    "schedule_to_close_timeout",
    "schedule_to_start_timeout",
    "start_to_close_timeout",
    "retry_policy",
    "cancellation_type",
    "activity_id",
    "summary",
)


def local_config(config: workflow.ActivityConfig) -> workflow.LocalActivityConfig:
    local: dict[str, Any] = {key: config[key] for key in _LOCAL_KEYS if key in config}  # type: ignore[literal-required]
    return local  # type: ignore[return-value]


async def execute(
    activity: str | Callable[..., Any],
    arg: Any,
    *,
    execution: Execution,
    config: workflow.ActivityConfig,
    result_type: type | None = None,
) -> Any:
    """Run `activity` (a registered name or an activity function) as `execution` says."""
    if execution == "local":
        with _as_activity_error(activity):
            return await workflow.execute_local_activity(
                activity,  # type: ignore[arg-type]
                arg,
                result_type=result_type,
                **local_config(config),
            )
    return await workflow.execute_activity(
        activity,  # type: ignore[arg-type]
        arg,
        result_type=result_type,
        **config,
    )


async def execute_method(
    method: Callable[[Any, Any], Awaitable[OutT]],
    arg: Any,
    *,
    execution: Execution,
    config: workflow.ActivityConfig,
) -> OutT:
    """Run the activity method `method` (of an activity class) as `execution` says."""
    if execution == "local":
        with _as_activity_error(method):
            return await workflow.execute_local_activity_method(method, arg, **local_config(config))
    return await workflow.execute_activity_method(method, arg, **config)


@contextmanager
def _as_activity_error(activity: str | Callable[..., Any]) -> Iterator[None]:
    """A local activity's failure arrives as its bare cause (an ApplicationError, a timeout);
    a remote one's as an ActivityError around it. Callers handle one shape: the remote one."""
    try:
        yield
    except ActivityError:
        raise
    except FailureError as exc:
        name = activity if isinstance(activity, str) else getattr(activity, "__name__", "")
        error = ActivityError(
            "local activity failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=name,
            activity_id="",
            retry_state=None,
        )
        raise error from exc
