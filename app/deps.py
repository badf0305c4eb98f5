"""Dependencies shared by the routes (FastAPI `Annotated` aliases).

All `async def`: they only read the app's state, and FastAPI runs a plain `def` dependency in
a worker thread, one hand-off per dependency per request (a tenth of the gateway's CPU when
starting runs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from config import Settings


async def get_client(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


TemporalClient = Annotated[Client, Depends(get_client)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]


async def get_secret(request: Request) -> bytes:
    secret: bytes = request.app.state.secret
    return secret


Secret = Annotated[bytes, Depends(get_secret)]
