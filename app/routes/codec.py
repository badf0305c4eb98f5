"""The codec server: Temporal's Web UI and CLI send encrypted payloads here to read them.

Temporal's documented protocol (docs.temporal.io "Codec Server"): `POST /codec/decode` and
`POST /codec/encode` with `{"payloads": [{"metadata": {k: base64}, "data": base64}]}` (the
JSON form of `temporal.api.common.v1.Payloads`), answered in the same shape. Point the Web UI's
"Codec Server" setting (or `temporal ... --codec-endpoint`) at `http://<gateway>/codec`.

Same auth as every other endpoint: with `DURABLE_AGENT_API_KEYS` set, a valid key is needed
(the CLI's `--codec-auth 'Bearer <key>'`; the Web UI passes its user's token when told to). A
browser calls it cross-origin, so these paths answer CORS for the origins in
`DURABLE_AGENT_CODEC_CORS_ORIGINS` (the local Web UI by default); no other path does.
Without payload keys it answers 404: there is nothing to decode.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from google.protobuf import json_format
from google.protobuf.message import Error as ProtobufError
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from app.auth import Tenant
from app.errors import ApiError, InvalidInput
from codec import AesGcmCodec, CodecError

# Temporal's protocol, not part of our API proper: left out of /openapi.json (and so of the
# schema tests); docs/operations.md documents it.
router = APIRouter(prefix="/codec", tags=["codec"], include_in_schema=False)

# A batch of payloads may be as large as a Temporal message (4 MB), base64 and JSON around it.
MAX_BODY_BYTES = 8 * 1024 * 1024

EXAMPLE = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "InRleHQi"}]}


class CodecOff(ApiError):
    status_code = 404
    code = "codec_not_enabled"


PayloadsBody = Annotated[
    dict[str, Any],
    Body(
        description="Payloads in the JSON form of temporal.api.common.v1.Payloads",
        examples=[EXAMPLE],
    ),
]


def _codec(request: Request) -> AesGcmCodec:
    codec: AesGcmCodec | None = request.app.state.codec
    if codec is None:
        raise CodecOff("payload encryption is not enabled on this gateway")
    return codec


def _parse(body: dict[str, Any]) -> Payloads:
    try:
        return json_format.ParseDict(body, Payloads())
    except (json_format.ParseError, ProtobufError, TypeError, ValueError) as exc:
        raise InvalidInput(
            'the body must be {"payloads": [{"metadata": {...}, "data": "<base64>"}]}',
            [{"path": "body.payloads", "message": str(exc)[:300]}],
        ) from None


def _render(payloads: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    out.setdefault("payloads", [])
    return out


@router.post("/decode", summary="Decrypt payloads (Temporal codec server protocol)")
async def decode(body: PayloadsBody, request: Request, tenant: Tenant) -> dict[str, Any]:
    codec = _codec(request)
    payloads = _parse(body)
    try:
        return _render(await codec.decode(list(payloads.payloads)))
    except CodecError as exc:
        raise InvalidInput(str(exc), [{"path": "body.payloads"}]) from None


@router.post("/encode", summary="Encrypt payloads (Temporal codec server protocol)")
async def encode(body: PayloadsBody, request: Request, tenant: Tenant) -> dict[str, Any]:
    codec = _codec(request)
    return _render(await codec.encode(list(_parse(body).payloads)))


class CodecCors:
    """CORS for `/codec/*` only: the Web UI, on its own origin, calls these from the browser."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["authorization", "content-type", "x-namespace", "x-api-key"],
            allow_credentials=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(router.prefix + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
