"""The gateway: a small, stateless FastAPI app in front of Temporal.

uvicorn app.main:app --host 127.0.0.1 --port 8000     # OpenAPI at /docs
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.errors import install_error_handlers
from app.routes import health, runs
from config import Settings, get_settings
from temporal_client import connect


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the process. Lazy, so the gateway starts (and answers /healthz and
        # 503s) even while Temporal is down, and reconnects when it comes back.
        app.state.temporal = await connect(settings, lazy=True)
        yield

    app = FastAPI(
        title="durable-agent",
        version="0.1.0",
        description=(
            "Runs AI-agent requests as durable Temporal workflows. Start a run, follow its "
            "state, answer its questions, pause, resume or cancel it."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(runs.router)
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()
