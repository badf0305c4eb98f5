"""The gateway's Prometheus metrics, served at `GET /metrics` (`prometheus_client`'s text
format; no API key, like the health checks: it holds counts and route templates, no run or
tenant data).

    durable_agent_http_requests_total{method, route, status}   answered requests
    durable_agent_http_request_duration_seconds{method, route}  time to the response's first
        byte (an event stream counts until its headers go out, not while it stays open)
    durable_agent_sse_streams_open                             event streams open now
    process_*                                                  CPU, memory, file descriptors

`route` is the route's template (`/api/v1/runs/{run_id}`), never the raw path, so the number of
series stays bounded; a path no route matches counts as `unmatched`.

Each app has a registry of its own (several apps in one process, as in tests, never collide).
The middleware also tells the logs which run a request is about (`telemetry.logs`).
"""

from __future__ import annotations

import re
import time
from collections import Counter

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import Counter as PromCounter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.logs import current_run_id

RUN_PATH = re.compile(r"^/api/v1/runs/([^/]+)")


class GatewayMetrics:
    def __init__(self, open_streams: Counter[str | None]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = PromCounter(
            "durable_agent_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "durable_agent_http_request_duration_seconds",
            "Time from a request's arrival to its response's first byte",
            ["method", "route"],
            registry=self.registry,
        )
        streams = Gauge(
            "durable_agent_sse_streams_open",
            "Event streams (GET /api/v1/runs/{run_id}/events) open on this process",
            registry=self.registry,
        )
        streams.set_function(lambda: float(sum(open_streams.values())))


class MetricsMiddleware:
    """Counts and times every HTTP request (outermost, so 413s and 401s count too)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False
        match = RUN_PATH.match(scope["path"])
        token = current_run_id.set(match.group(1) if match else None)

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)

        async def measuring_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                observe()
            await send(message)

        try:
            await self.app(scope, receive, measuring_send)
        finally:
            observe()  # a response that never started (client gone, or an error)
            current_run_id.reset(token)


# For Prometheus, not for API clients: left out of /openapi.json.
router = APIRouter(tags=["health"], include_in_schema=False)


@router.get(
    "/metrics",
    summary="Prometheus metrics of this gateway process",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
