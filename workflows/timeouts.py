"""Every activity's timeouts and retry policy, in one place.

What governs recovery after a worker is killed mid-activity: the heartbeat timeout (Temporal
declares the attempt lost when no heartbeat arrives for that long) plus the first retry interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy

# Error types that no retry can fix; activities raise them as non-retryable anyway, listing them
# here protects against a provider that forgets to.
NON_RETRYABLE = ["ToolError", "InvalidInput", "ConfigurationError"]


@dataclass(frozen=True)
class ActivityOptions:
    start_to_close: timedelta
    heartbeat: timedelta
    retry: RetryPolicy


LLM_STAGE = ActivityOptions(
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(seconds=5),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

TOOL_CALL = ActivityOptions(
    start_to_close=timedelta(minutes=2),
    heartbeat=timedelta(seconds=5),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)

# Listing every tool source once per run (MCP servers that do not answer within the worker's
# `mcp_list_timeout_s` are left out, not retried: the run goes on without them).
TOOL_LISTING = ActivityOptions(
    start_to_close=timedelta(minutes=2),
    heartbeat=timedelta(seconds=5),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)
