"""The gateway: a small, stateless FastAPI app in front of Temporal.

python -m app --host 127.0.0.1 --port 8000     # OpenAPI at /docs (see app/__main__.py)
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from activities.tools.registry import ToolRegistry
from activities.tools.sources import ToolConfigError, build_registry
from app import metrics
from app.agent_catalog import load_agents
from app.errors import install_error_handlers
from app.graph_catalog import load_catalog
from app.limits import BodySizeLimit
from app.routes import agents, codec, events, graphs, health, runs, tools
from app.secret import load_secret
from app.yaml_bodies import YamlBodies
from codec import payload_codec
from config import Settings, environment, get_settings, parse_api_keys
from telemetry.logs import configure_logging
from telemetry.tracing import instrument_gateway
from temporal_client import connect, ensure_search_attributes, tls_problem

logger = logging.getLogger(__name__)

# Endpoints that never need an API key.
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the process. Lazy, so the gateway starts (and answers /healthz and
        # 503s) even while Temporal is down, and reconnects when it comes back.
        app.state.temporal = await connect(
            settings, lazy=True, retry_budget_s=settings.temporal_retry_budget_s
        )
        # Runs are started with our search attributes set; make sure they exist even if no
        # worker has registered them yet. Best effort: Temporal may be down right now.
        registering = asyncio.create_task(_register_search_attributes(app, settings))
        yield
        registering.cancel()

    # /docs and /redoc with Swagger UI's and ReDoc's assets served from here, not from a CDN,
    # so the interactive docs work offline.
    app = FastAPIOffline(
        title="durable-agent",
        version="0.1.0",
        description=(
            "Runs AI-agent requests as durable Temporal workflows. Start a run, follow its "
            "state, answer its questions, pause, resume or cancel it."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Event streams open on this process, by tenant (see app.routes.events).
    app.state.open_streams = Counter()
    app.state.api_keys = parse_api_keys(settings.api_keys)
    app.state.secret = load_secret(settings)
    app.state.tools = _tool_registry(settings)
    app.state.tools_lock = asyncio.Lock()
    app.state.tool_names = ToolNames(app.state.tools)
    app.state.agents = load_agents(settings.agents_dir, app.state.tool_names)
    app.state.graphs = load_catalog(settings.graphs_dir, app.state.tool_names, app.state.agents)
    keys = settings.payload_keys
    app.state.codec = payload_codec(keys.get_secret_value() if keys else None)
    app.state.metrics = metrics.GatewayMetrics(app.state.open_streams)
    install_error_handlers(app)
    # Inside the size limit: a YAML body is bounded before it is read.
    app.add_middleware(
        YamlBodies,
        paths=frozenset({"/api/v1/runs", "/api/v1/graphs/validate", "/api/v1/agents/validate"}),
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        prefix_limits={codec.router.prefix + "/": codec.MAX_BODY_BYTES},
    )
    app.add_middleware(
        codec.CodecCors, origins=[o.strip() for o in settings.codec_cors_origins.split(",")]
    )
    app.add_middleware(metrics.MetricsMiddleware, metrics=app.state.metrics)
    instrument_gateway(app, settings)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(events.router)
    app.include_router(graphs.router)
    app.include_router(agents.router)
    app.include_router(tools.router)
    app.include_router(codec.router)
    app.include_router(metrics.router)
    if app.state.api_keys:
        _document_api_keys(app)
    return app


def _tool_registry(settings: Settings) -> ToolRegistry:
    try:
        return build_registry(
            knowledge_dir=settings.knowledge_dir,
            notes_file=settings.notes_file,
            tools_file=settings.tools_file,
            environ=environment(),
            use_entry_points=settings.tool_entry_points,
        )
    except ToolConfigError as exc:
        raise SystemExit(f"gateway not started: {exc}") from None


class ToolNames(Collection[str]):
    """The names a graph may use: every registered tool, and `<server>.<tool>` for each MCP
    server (its tools are known only by asking it; the worker fails an unknown one's node)."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Iterator[str]:
        names = self._registry.names()
        names.extend(f"{source.name}.<tool>" for source in self._registry.sources)
        return iter(names)

    def __len__(self) -> int:
        return len(self._registry.names()) + len(self._registry.sources)


def _document_api_keys(app: FastAPI) -> None:
    """With API keys on, the OpenAPI document says which endpoints need one, and how."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, operations in schema["paths"].items():
            if path in PUBLIC_PATHS:
                continue
            for operation in operations.values():
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _register_search_attributes(app: FastAPI, settings: Settings) -> None:
    delay = 0.5
    while True:
        try:
            await ensure_search_attributes(app.state.temporal, settings.namespace)
            return
        except RuntimeError as exc:  # not connected yet
            problem = tls_problem(settings, exc)
            if problem is not None:  # a misconfiguration, not an outage: say it loudly
                logger.warning("cannot reach Temporal: %s; retrying", problem)
            else:
                logger.info("search attributes not registered yet (%s); retrying", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30)


configure_logging(get_settings().log_format)
app = create_app()
