"""Logs, traces and metrics of the worker and the gateway (`docs/operations.md`).

logs.py      logging set-up: text or JSON lines, each about a run carrying its ids
tracing.py   OpenTelemetry: a tracer provider from the standard OTEL_* variables, and the
             Temporal interceptor that carries a trace from the gateway through activities
metrics.py   the worker's Prometheus endpoint (the SDK runtime's) and per-activity metrics
"""
