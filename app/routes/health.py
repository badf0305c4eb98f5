"""Liveness and readiness."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from temporalio.service import RPCError

from app.deps import AppSettings, TemporalClient
from app.errors import TemporalUnavailable
from app.routes.runs import ERRORS
from temporal_client import tls_problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The gateway process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: ERRORS[503]}, summary="Temporal is reachable (503 otherwise)"
)
async def readyz(client: TemporalClient, settings: AppSettings) -> dict[str, str]:
    try:
        await client.service_client.check_health(
            timeout=timedelta(seconds=min(settings.query_timeout_s, 5))
        )
    except (RPCError, RuntimeError) as exc:
        # A TLS failure says which setting to fix; anything else, the SDK's own words.
        message = tls_problem(settings, exc) or "Temporal is unreachable"
        raise TemporalUnavailable(message, {"reason": str(exc)}) from None
    return {"status": "ready"}
