"""The worker's metrics: the SDK runtime's Prometheus endpoint, and what each activity adds.

Temporal's own worker metrics (`temporal_*`: task latencies, slots, polls, failures) and ours
share one endpoint, `http://<host>:<DURABLE_AGENT_WORKER_METRICS_PORT>/metrics`, served by the
SDK's runtime (no extra HTTP server in Python). Ours, recorded through the SDK's meters:

- from activities (this module's interceptor, so no activity has to remember to):
  `durable_agent_activity_duration_seconds{activity, outcome}` — a node's time per attempt;
  `durable_agent_llm_tokens{activity, direction}` and `durable_agent_llm_cost_usd{activity}`
  from the `usage` an activity returns;
- from workflow code (`workflows/run_metrics.py`, replay safe): runs by status, stage and run
  durations.
"""

from __future__ import annotations

import time
from typing import Any

from temporalio import activity
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from shared import Usage

ACTIVITY_DURATION = "durable_agent_activity_duration_seconds"
LLM_TOKENS = "durable_agent_llm_tokens"
LLM_COST = "durable_agent_llm_cost_usd"


def prometheus_runtime(host: str, port: int) -> Runtime:
    """A runtime whose metrics Prometheus scrapes at `http://host:port/metrics`."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"{host}:{port}",
                # Seconds, as Prometheus names and dashboards expect (the SDK default is ms).
                durations_as_seconds=True,
            )
        )
    )


class ActivityMetrics(Interceptor):
    """Times every activity attempt and counts the LLM usage it reports."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetricsInbound(next)


class _ActivityMetricsInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        meter = activity.metric_meter()
        name = activity.info().activity_type
        started = time.monotonic()
        outcome = "failed"
        try:
            result = await super().execute_activity(input)
            outcome = "completed"
        except BaseException as exc:
            if activity.is_cancelled() or type(exc).__name__ == "CancelledError":
                outcome = "cancelled"
            raise
        finally:
            meter.create_histogram_float(
                ACTIVITY_DURATION, "time of one activity attempt", "s"
            ).record(time.monotonic() - started, {"activity": name, "outcome": outcome})
        usage = getattr(result, "usage", None)
        if isinstance(usage, Usage) and (usage.calls or usage.tokens_in or usage.tokens_out):
            tokens = meter.create_counter(LLM_TOKENS, "LLM tokens, by direction", "1")
            tokens.add(usage.tokens_in, {"activity": name, "direction": "in"})
            tokens.add(usage.tokens_out, {"activity": name, "direction": "out"})
            meter.create_histogram_float(
                LLM_COST, "estimated LLM cost of one activity (USD)", "USD"
            ).record(usage.cost_usd, {"activity": name})
        return result
