"""The gateway's errors and the one handler that renders them.

    ApiError                     {"error": {"code", "message", "details"}}
    ├── Unauthorized        401  missing or invalid API key
    ├── RunNotFound         404  no run with that id (or another tenant's run)
    ├── ApprovalNotFound    404  the run has no approval with that id
    ├── InvalidState        409  the run exists but cannot take that action now (its status,
    │                            or Temporal's FAILED_PRECONDITION)
    ├── InvalidInput        422  the body is well-formed JSON but its content is not acceptable
    ├── IdempotencyConflict 422  an Idempotency-Key reused with a different body
    ├── InvalidGraph        422  a graph definition with problems (all listed in `details`)
    ├── GraphNotFound       404  no graph of that name in the catalog
    ├── InvalidAgent        422  an agent definition with problems (all listed in `details`)
    ├── AgentNotFound       404  no agent of that name in the catalog
    ├── TooManyStreams      429  the tenant has as many event streams open as it may;
    │                            with `Retry-After`
    └── TemporalUnavailable 503  Temporal (or a worker answering queries) cannot be reached or
                                 did not answer in time; always with `Retry-After`

413 (body over the limit) is answered by `app.limits.BodySizeLimit` before routing.

Request-validation errors (422), unknown routes (404/405) and anything unexpected (500, with no
stack trace) are rendered in the same shape. Temporal's errors (RPC errors, timed-out updates,
a client that cannot connect) are translated in :func:`translate_rpc_error`, and nowhere else;
one that escapes a route is translated by the handler, so it is never a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

logger = logging.getLogger(__name__)


# Seconds a client should wait before retrying a 503.
RETRY_AFTER_S = 2


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def headers(self) -> dict[str, str] | None:
        return None


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class RunNotFound(ApiError):
    status_code = 404
    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}", {"run_id": run_id})


class ApprovalNotFound(ApiError):
    status_code = 404
    code = "approval_not_found"


class InvalidState(ApiError):
    status_code = 409
    code = "invalid_state"


class InvalidInput(ApiError):
    status_code = 422
    code = "invalid_input"


class IdempotencyConflict(ApiError):
    status_code = 422
    code = "idempotency_key_reused"


class InvalidGraph(ApiError):
    status_code = 422
    code = "invalid_graph"

    def __init__(self, problems: Any) -> None:
        details = [{"path": p.path, "message": p.message} for p in problems]
        super().__init__(f"the graph has {len(details)} problem(s)", details)


class GraphNotFound(ApiError):
    status_code = 404
    code = "graph_not_found"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no graph named {name!r}; known: {', '.join(known)}", {"known": known})


class InvalidAgent(ApiError):
    status_code = 422
    code = "invalid_agent"

    def __init__(self, problems: Any) -> None:
        details = [{"path": p.path, "message": p.message} for p in problems]
        super().__init__(f"the agent definition has {len(details)} problem(s)", details)


class AgentNotFound(ApiError):
    status_code = 404
    code = "agent_not_found"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no agent named {name!r}; known: {', '.join(known)}", {"known": known})


class TooManyStreams(ApiError):
    status_code = 429
    code = "too_many_streams"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(RETRY_AFTER_S)}


class TemporalUnavailable(ApiError):
    status_code = 503
    code = "temporal_unavailable"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(RETRY_AFTER_S)}


# Temporal's answers that mean "not now": the cluster or a worker is down, slow or overloaded.
_TRANSIENT = {
    RPCStatusCode.UNAVAILABLE: "Temporal is unreachable",
    RPCStatusCode.DEADLINE_EXCEEDED: "Temporal did not answer in time",
    RPCStatusCode.CANCELLED: "Temporal did not answer in time",
    RPCStatusCode.RESOURCE_EXHAUSTED: "Temporal is overloaded",
    RPCStatusCode.ABORTED: "Temporal aborted the request",
}


def translate_rpc_error(exc: BaseException, run_id: str | None = None) -> ApiError:
    """The one mapping from Temporal's errors to the gateway's: never a 500.

    NOT_FOUND -> 404 (for a run), FAILED_PRECONDITION -> 409 (the run cannot take that action),
    INVALID_ARGUMENT -> 422, timeouts and overload -> 503, anything else -> 503 as well: a client
    can retry it, and it is logged here.
    """
    if isinstance(exc, RPCTimeoutOrCancelledError):  # e.g. a query or signal that outlived its RPC
        return TemporalUnavailable(
            "Temporal did not answer in time; the request may still take effect: retry it "
            "(with the same Idempotency-Key where the endpoint takes one)",
            {"reason": str(exc) or type(exc).__name__},
        )
    if not isinstance(exc, RPCError):
        # The lazy client could not connect (RuntimeError), or another SDK error.
        if not isinstance(exc, RuntimeError):
            logger.warning("unexpected Temporal error %s: %s", type(exc).__name__, exc)
        return TemporalUnavailable("Temporal is unreachable", {"reason": str(exc)})
    reason = {"reason": exc.message}
    if exc.status is RPCStatusCode.NOT_FOUND and run_id is not None:
        return RunNotFound(run_id)
    if exc.status is RPCStatusCode.FAILED_PRECONDITION and _not_ready(exc):
        # The run's workflow task is failing or being retried (a worker died mid-task): not a
        # state the run is in, a moment to wait out.
        return TemporalUnavailable(
            "the run is not ready to take this now (its workflow task is being retried); "
            "retry shortly",
            reason,
        )
    if exc.status is RPCStatusCode.FAILED_PRECONDITION and "no poller" in exc.message:
        # No worker polled the run's task queue lately (restarting, or too busy to poll): the
        # worker's state, not the run's.
        return TemporalUnavailable(
            "no worker has taken the run's tasks lately; retry shortly", reason
        )
    if exc.status is RPCStatusCode.FAILED_PRECONDITION:
        return InvalidState(f"the run cannot take this action now: {exc.message}", reason)
    if exc.status is RPCStatusCode.INVALID_ARGUMENT:
        return InvalidInput(f"Temporal refused the request: {exc.message}", reason)
    if exc.status in _TRANSIENT:
        hint = "; is a worker running on the task queue?" if run_id is not None else ""
        return TemporalUnavailable(_TRANSIENT[exc.status] + hint, reason)
    logger.warning("unexpected Temporal error %s: %s", exc.status.name, exc.message)
    return TemporalUnavailable("Temporal could not serve the request", reason)


def _not_ready(exc: RPCError) -> bool:
    return "Workflow Task in failed state" in exc.message or "not ready" in exc.message.lower()


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


class ErrorResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error may quote what the client sent, and what it sent
    may hold a lone surrogate, which has no UTF-8 encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _allowed_methods(request: Request) -> str:
    """Every method of the path, for a 405's `Allow`. Starlette lists only the first route that
    matched, although GET and POST of one path are two routes; a literal path (`/graphs/validate`)
    wins over a template that also matches it (`/graphs/{name}`)."""
    path = request.scope["path"]
    literal: set[str] = set()
    templated: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods = getattr(route, "methods", None) or ()
            (literal if getattr(route, "path", None) == path else templated).update(methods)
    return ", ".join(sorted(literal or templated))


def install_error_handlers(app: FastAPI) -> None:
    def render(exc: ApiError) -> JSONResponse:
        return ErrorResponse(
            _body(exc.code, exc.message, exc.details), exc.status_code, exc.headers()
        )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return render(exc)

    @app.exception_handler(TemporalError)
    async def _temporal_error(_: Request, exc: TemporalError) -> JSONResponse:
        # A Temporal error a route did not translate itself: still an answer, never a 500.
        return render(translate_rpc_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "path": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details)
        return ErrorResponse(_body("invalid_request", f"invalid request: {summary}", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body its JSON parser gave up on (e.g. nested thousands of
            # levels deep): a request error like any other.
            message = "the body could not be parsed as JSON (malformed or nested too deeply)"
            details = [{"path": "body", "message": message, "type": "json_invalid"}]
            return ErrorResponse(_body("invalid_request", message, details), 422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return ErrorResponse(_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return ErrorResponse(_body("internal_error", "internal error; see the gateway log"), 500)
