"""Every activity's timeouts and retry policy, in one place, as Temporal's own `ActivityConfig`
(spread into `workflow.execute_activity(..., **config)`).

What governs recovery after a worker is killed mid-activity: the heartbeat timeout (Temporal
declares the attempt lost when no heartbeat arrives for that long) plus the first retry interval.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType, ActivityConfig

# Error types that no retry can fix; activities raise them as non-retryable anyway, listing them
# here protects against a provider that forgets to.
NON_RETRYABLE = ["ToolError", "InvalidInput", "ConfigurationError"]

LLM_STAGE = ActivityConfig(
    start_to_close_timeout=timedelta(minutes=5),
    heartbeat_timeout=timedelta(seconds=5),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=NON_RETRYABLE,
    ),
    # Wait for the activity to acknowledge a cancellation, so a cancelled run leaves nothing
    # running.
    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
)

TOOL_CALL: ActivityConfig = {
    **LLM_STAGE,
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}


def retry_policy(max_attempts: int, initial_interval_s: float, backoff: float) -> RetryPolicy:
    """A node's own retry policy (graph `retry`), with the same non-retryable errors."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial_interval_s),
        backoff_coefficient=backoff,
        maximum_attempts=max_attempts,
        non_retryable_error_types=NON_RETRYABLE,
    )


# Listing every tool source once per run (MCP servers that do not answer within the worker's
# `mcp_list_timeout_s` are left out, not retried: the run goes on without them).
TOOL_LISTING: ActivityConfig = {
    **LLM_STAGE,
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}
