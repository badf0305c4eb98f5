"""Refuse request bodies over the configured size (413), counting the bytes actually received.

A declared `Content-Length` over the limit is refused before the body is read. Otherwise the
headers are not trusted (a chunked body may come with a small, false `Content-Length`): every
chunk the app reads is counted, and the first one past the limit answers 413 at once; the app
then reads a disconnect, so it stops reading, and what it answers after that is dropped. The
app never holds more than the limit.

What the server does with the rest of a refused body (read and discard a little of it, so that
the client can read the 413, then close the connection) is `app.transport`'s part.

A request that declares both a `Content-Length` and `Transfer-Encoding` is read as chunked, and
its connection is closed after the response (RFC 9112, section 6.1).

Starlette's `RequestBodyLimitMiddleware` (and FastAPI's `max_body_size`, built on it) counts the
same way, but answers in shapes of its own (plain text, or `{"detail"}`), not the gateway's
`{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLOSE = (b"connection", b"close")


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, prefix_limits: dict[str, int] | None = None
    ) -> None:
        """`prefix_limits`: another limit for paths under a prefix (the codec server's)."""
        self.app = app
        self.default_max_bytes = max_bytes
        self.prefix_limits = prefix_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.default_max_bytes
        for prefix, prefix_limit in self.prefix_limits.items():
            if scope["path"].startswith(prefix):
                limit = prefix_limit
        declared: int | None = None
        chunked = False
        for name, value in scope.get("headers") or []:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"transfer-encoding":
                chunked = True
        close = chunked and declared is not None
        if declared is not None and declared > limit:
            await self._refuse(send, limit, close=close)
            return

        received = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await self._refuse(send, limit, close=close)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                if close:
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send: Send, limit: int, *, close: bool) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"the request body is larger than {limit} bytes",
                    "details": {"limit_bytes": limit},
                }
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [*headers, CLOSE] if close else headers,
            }
        )
        await send({"type": "http.response.body", "body": body})
