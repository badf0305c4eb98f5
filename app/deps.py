"""Dependencies shared by the routes (FastAPI `Annotated` aliases)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from config import Settings


def get_client(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


TemporalClient = Annotated[Client, Depends(get_client)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]


def get_secret(request: Request) -> bytes:
    secret: bytes = request.app.state.secret
    return secret


Secret = Annotated[bytes, Depends(get_secret)]
