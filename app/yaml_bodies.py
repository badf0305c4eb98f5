"""YAML request bodies: a graph definition (or a run request with an inline one) may be sent as
`application/yaml`. On the routes that take one, such a body is read as the JSON it denotes
and handed on as JSON, so the routes, their validation and their errors stay one.

Safe YAML only, and of what JSON can say: anchors and aliases are refused (an alias bomb
expands exponentially), and so is nesting past MAX_DEPTH; the body's size is already bounded
(`app.limits.BodySizeLimit`, outside this one). A body that is not such YAML answers 422 in the
gateway's error shape.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

YAML_TYPES = frozenset({b"application/yaml", b"application/x-yaml", b"text/yaml", b"text/x-yaml"})
MAX_DEPTH = 64


class _JsonOnlyLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader without anchors/aliases and with a depth bound."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("anchors and aliases (*name) are not accepted")
        depth = getattr(self, "_depth", 0) + 1
        if depth > MAX_DEPTH:
            raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels")
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1


def yaml_to_json(body: bytes) -> bytes:
    """The JSON form of a YAML document; raises ValueError saying what is wrong."""
    try:
        data = yaml.load(body, Loader=_JsonOnlyLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"the body is not valid YAML: {str(exc)[:300]}") from None
    # Dates and times become their text; everything else YAML can say, JSON can.
    return json.dumps(data, default=str).encode()


def yaml_body(schema: str | None = None) -> dict[str, Any]:
    """OpenAPI: the route also takes its body as YAML."""
    shape = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
    return {"requestBody": {"content": {"application/yaml": {"schema": shape}}}}


class YamlBodies:
    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers") or [] if scope["type"] == "http" else []
        content_type = next((v for k, v in headers if k == b"content-type"), b"")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in self.paths
            or content_type.split(b";")[0].strip().lower() not in YAML_TYPES
        ):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or the size limit cut it off)
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            converted = yaml_to_json(body)
        except ValueError as exc:
            await _refuse(send, str(exc))
            return
        scope = {
            **scope,
            "headers": [
                *((k, v) for k, v in headers if k not in (b"content-type", b"content-length")),
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(converted)),
            ],
        }
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": converted, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "invalid_input",
                "message": message,
                "details": [{"path": "body", "message": message}],
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
