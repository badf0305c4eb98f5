"""Every Temporal error becomes a JSON answer the client can act on; never a 500."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from app.errors import translate_rpc_error


@pytest.mark.parametrize(
    ("status", "http", "code"),
    [
        (RPCStatusCode.NOT_FOUND, 404, "run_not_found"),
        (RPCStatusCode.FAILED_PRECONDITION, 409, "invalid_state"),
        (RPCStatusCode.INVALID_ARGUMENT, 422, "invalid_input"),
        (RPCStatusCode.DEADLINE_EXCEEDED, 503, "temporal_unavailable"),
        (RPCStatusCode.CANCELLED, 503, "temporal_unavailable"),
        (RPCStatusCode.RESOURCE_EXHAUSTED, 503, "temporal_unavailable"),
        (RPCStatusCode.UNAVAILABLE, 503, "temporal_unavailable"),
        (RPCStatusCode.INTERNAL, 503, "temporal_unavailable"),
        (RPCStatusCode.PERMISSION_DENIED, 503, "temporal_unavailable"),
        (RPCStatusCode.UNKNOWN, 503, "temporal_unavailable"),
    ],
)
def test_rpc_errors(status: RPCStatusCode, http: int, code: str) -> None:
    error = translate_rpc_error(RPCError("boom", status, b""), run_id="run-1")
    assert (error.status_code, error.code) == (http, code)
    headers = error.headers() or {}
    assert ("Retry-After" in headers) == (http == 503)


def test_every_status_code_is_an_answer() -> None:
    for status in RPCStatusCode:
        if status is RPCStatusCode.OK:
            continue
        assert translate_rpc_error(RPCError("x", status, b"")).status_code in (404, 409, 422, 503)


def test_an_update_that_outlived_its_rpc_is_503_with_retry_after() -> None:
    error = translate_rpc_error(WorkflowUpdateRPCTimeoutOrCancelledError())
    assert error.status_code == 503 and error.headers() == {"Retry-After": "2"}
    assert "Idempotency-Key" in error.message


def test_a_client_that_cannot_connect_is_503() -> None:
    error = translate_rpc_error(RuntimeError("not connected"))
    assert error.status_code == 503 and error.headers() is not None


def test_no_worker_polling_lately_is_a_503_not_a_refusal_by_the_run() -> None:
    # Temporal says FAILED_PRECONDITION, as for an action the run cannot take; but it is the
    # worker that is missing (restarting, or too busy to poll): retry, do not give up.
    message = "no poller seen for task queue recently, worker may be down"
    error = translate_rpc_error(
        RPCError(message, RPCStatusCode.FAILED_PRECONDITION, b""), run_id="run-1"
    )
    assert (error.status_code, error.code) == (503, "temporal_unavailable")
