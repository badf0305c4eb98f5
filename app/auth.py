"""API keys and tenants.

With `DURABLE_AGENT_API_KEYS` unset, nothing is required and runs have no tenant. With it set,
every endpoint but the health checks needs `Authorization: Bearer <key>` or `X-API-Key: <key>`;
the key names the tenant, and a tenant sees only its own runs.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.errors import Unauthorized


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("x-api-key") or None


async def current_tenant(request: Request) -> str | None:  # async: no thread hand-off
    keys: dict[str, str] = request.app.state.api_keys
    if not keys:
        return None
    presented = _presented_key(request)
    if presented is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    tenant = None
    # Compare against every key, in constant time, so timing tells nothing about which matched.
    for key, owner in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            tenant = owner
    if tenant is None:
        raise Unauthorized("the API key is not valid")
    return tenant


Tenant = Annotated[str | None, Depends(current_tenant)]
