"""/api/v1/tools: every tool runs may call — built-in, Python functions, MCP servers' tools.

The list comes from the same operator configuration the worker loads (the tools file, the
entry point group, the environment); MCP servers are asked now, each within
`mcp_list_timeout_s`, and their connections closed again (the gateway keeps no server running).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from activities.tools.registry import ToolRegistry
from app.auth import Tenant
from app.deps import AppSettings
from app.routes.runs import ERRORS
from app.schemas import ToolList, ToolView

router = APIRouter(prefix="/api/v1/tools", tags=["tools"])


@router.get("", response_model=ToolList, responses=ERRORS, summary="List every tool")
async def list_tools(request: Request, settings: AppSettings, tenant: Tenant) -> ToolList:
    registry: ToolRegistry = request.app.state.tools
    lock: asyncio.Lock = request.app.state.tools_lock
    async with lock:  # one listing at a time: each may start stdio servers
        try:
            catalog = await registry.catalog(settings.mcp_list_timeout_s)
        finally:
            await registry.aclose()
    return ToolList(
        tools=[ToolView.model_validate(spec.model_dump()) for spec in catalog.tools],
        unavailable=catalog.unavailable,
    )
