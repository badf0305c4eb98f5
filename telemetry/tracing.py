"""Tracing with OpenTelemetry: off unless `OTEL_TRACES_EXPORTER` names an exporter.

On, one trace runs from the gateway's `POST /api/v1/runs` (FastAPI instrumentation) through the
workflow start, the workflow and every activity: Temporal's `TracingInterceptor`
(`temporalio.contrib.opentelemetry`) on the client carries the context in Temporal headers, and
the worker gets it from its client. The interceptor creates workflow spans only when a workflow
task is not a replay, so a replayed history adds no span.

Everything else comes from the standard variables, read by the OpenTelemetry SDK itself:
`OTEL_TRACES_EXPORTER` (`otlp` — over HTTP/protobuf —, `console`, or any exporter an installed
package registers), `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, and `OTEL_SDK_DISABLED=true` to turn it all off.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

from config import Settings

# `otlp` means OTLP over HTTP/protobuf here: the one OTLP exporter installed (the gRPC one
# would bring grpcio along).
_ALIASES = {"otlp": "otlp_proto_http"}


def temporal_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client interceptors for this process (workers built on the client get
    them too)."""
    return [TracingInterceptor()] if settings.tracing_enabled else []


def configure_tracing(settings: Settings, default_service: str) -> TracerProvider | None:
    """Install the global tracer provider with the exporters `OTEL_TRACES_EXPORTER` names.

    `default_service` is the service name unless `OTEL_SERVICE_NAME` (or `service.name` in
    `OTEL_RESOURCE_ATTRIBUTES`) says otherwise. An exporter name nothing provides stops the
    process at start, with the names that exist.
    """
    if not settings.tracing_enabled:
        return None
    detected = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if not _service_name_set(detected):
        detected = detected.merge(Resource({SERVICE_NAME: default_service}))
    provider = TracerProvider(resource=detected)
    for name in settings.otel_traces_exporter.split(","):
        name = name.strip()
        if name and name != "none":
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    return provider


def _service_name_set(resource: Resource) -> bool:
    return not str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service")


def _exporter(name: str) -> SpanExporter:
    group = entry_points(group="opentelemetry_traces_exporter")
    wanted = _ALIASES.get(name, name)
    for entry in group:
        if entry.name in (name, wanted):
            exporter: SpanExporter = entry.load()()
            return exporter
    known = sorted({e.name for e in group} | set(_ALIASES))
    raise SystemExit(
        f"OTEL_TRACES_EXPORTER={name!r}: no such span exporter is installed; known: "
        f"{', '.join(known)}"
    )


def instrument_gateway(app: Any, settings: Settings) -> None:
    """FastAPI server spans for every request but the probes and the metrics scrape."""
    if not settings.tracing_enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
