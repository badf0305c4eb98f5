"""Liveness and readiness."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from temporalio.service import RPCError

from app.deps import AppSettings, TemporalClient
from app.errors import TemporalUnavailable
from app.routes.runs import ERRORS

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
        raise TemporalUnavailable("Temporal is unreachable", {"reason": str(exc)}) from None
    return {"status": "ready"}
