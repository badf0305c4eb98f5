"""The gateway's transport under abuse, over raw sockets: bodies are counted as they arrive
(whatever the headers say) and never buffered past the limit, and clients that stall while
sending a request are cut off, while event streams and keep-alive connections live on."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.processes import stop
from tests.e2e.conftest import Gateway, Stack, start_gateway

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
LIMIT = 64 * 1024  # the default DURABLE_AGENT_MAX_BODY_BYTES
MIB = 1024 * 1024
# Far more than a correct gateway ever holds for one request (the limit plus the server's read
# buffers and the loopback socket buffers), far less than the bodies sent.
MEMORY_SLACK = 24 * MIB
SENT_SLACK = 24 * MIB
CLOSED_DEADLINE_S = 20.0  # generous: "closed at all", not "closed on time"


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {
        **stack.env,
        "DURABLE_AGENT_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "DURABLE_AGENT_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "DURABLE_AGENT_SSE_PING_S": "1",
    }
    started = start_gateway(env, tmp_path_factory.mktemp("transport") / "gateway.log")
    yield started
    stop(started.proc)


@pytest.fixture(scope="module")
def keyed_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {**stack.env, "DURABLE_AGENT_API_KEYS": "k1:acme"}
    started = start_gateway(env, tmp_path_factory.mktemp("transport-keys") / "gateway.log")
    yield started
    stop(started.proc)


# --- raw HTTP ----------------------------------------------------------------------------------


def _connect(gateway: Gateway) -> socket.socket:
    url = urlsplit(gateway.base_url)
    assert url.hostname is not None and url.port is not None
    return socket.create_connection((url.hostname, url.port), timeout=CLOSED_DEADLINE_S)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return dict(json.loads(self.body)["error"])


def _parse(raw: bytes) -> Answer | None:
    """The first complete response in `raw` (it must carry a Content-Length), or None."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return Answer(int(lines[0].split()[1]), headers, rest[:length])


def _read_answer(sock: socket.socket) -> Answer:
    raw = b""
    while (answer := _parse(raw)) is None:
        data = sock.recv(65536)
        assert data, f"the connection closed before a whole response: {raw!r}"
        raw += data
    return answer


def _closed(sock: socket.socket) -> bool:
    """Whether the server closes the connection within the deadline (reads what is left)."""
    sock.setblocking(True)
    sock.settimeout(CLOSED_DEADLINE_S)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _post_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Pushed:
    answer: Answer | None
    body_bytes_sent: int


def _push_chunked(sock: socket.socket, head: bytes, total: int, piece: int = 256 * 1024) -> Pushed:
    """Send `head` then a chunked body of `total` bytes, reading the answer as soon as the server
    gives one; stop sending at that point, or when the server closes the connection."""
    sock.setblocking(False)
    framed = _chunk(b"x" * piece)
    pending = memoryview(head)
    handed = 0  # bytes handed to the kernel, head included
    pieces_left = total // piece
    ended = False
    raw = b""
    sending = True
    deadline = time.monotonic() + CLOSED_DEADLINE_S * 3
    while time.monotonic() < deadline:
        if sending and not pending:
            if pieces_left:
                pending, pieces_left = memoryview(framed), pieces_left - 1
            elif not ended:
                pending, ended = memoryview(b"0\r\n\r\n"), True
            else:
                sending = False
        readable, writable, _ = select.select([sock], [sock] if sending else [], [], 1.0)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            raw += data
            sending = False  # the server has answered: a polite client stops here
            if _parse(raw) is not None:
                break
        elif writable:
            try:
                n = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                sending = False
                continue
            handed += n
            pending = pending[n:]
    sock.setblocking(True)
    return Pushed(_parse(raw), max(0, handed - len(head)))


# --- gateway memory ----------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


class PeakMemory:
    """The process's peak resident memory over a block (VmHWM, reset through clear_refs: the
    resident size after the block would miss a body buffered then freed)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> PeakMemory:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # reset the high-water mark
        self.before = _status_kib(self.pid, "VmRSS") * 1024
        return self

    def __exit__(self, *_: object) -> None:
        self.growth = _status_kib(self.pid, "VmHWM") * 1024 - self.before


def _healthz(gateway: Gateway) -> int:
    return httpx.get(gateway.base_url + "/healthz", timeout=5).status_code


# --- the body limit ----------------------------------------------------------------------------


def test_chunked_body_with_a_lying_content_length_is_counted(gateway: Gateway) -> None:
    assert _healthz(gateway) == 200  # warm
    total = 128 * MIB
    with PeakMemory(gateway.proc.pid) as memory, _connect(gateway) as sock:
        head = _post_head("/api/v1/runs", "Transfer-Encoding: chunked", "Content-Length: 5")
        pushed = _push_chunked(sock, head, total)
    assert pushed.answer is not None, "no answer to an oversized body"
    assert pushed.answer.status == 413, pushed.answer
    error = pushed.answer.error()
    assert error["code"] == "payload_too_large" and error["details"]["limit_bytes"] == LIMIT
    assert pushed.body_bytes_sent < SENT_SLACK, f"the gateway read {pushed.body_bytes_sent} bytes"
    assert memory.growth < MEMORY_SLACK, f"the gateway grew by {memory.growth} bytes"
    assert _healthz(gateway) == 200


def test_chunked_body_without_length_is_counted(gateway: Gateway) -> None:
    with PeakMemory(gateway.proc.pid) as memory, _connect(gateway) as sock:
        pushed = _push_chunked(
            sock, _post_head("/api/v1/runs", "Transfer-Encoding: chunked"), 64 * MIB
        )
    assert pushed.answer is not None and pushed.answer.status == 413, pushed.answer
    assert pushed.answer.error()["code"] == "payload_too_large"
    assert pushed.body_bytes_sent < SENT_SLACK
    assert memory.growth < MEMORY_SLACK, f"the gateway grew by {memory.growth} bytes"


def test_declared_length_over_the_limit_is_refused_before_the_body(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_post_head("/api/v1/runs", f"Content-Length: {10 * MIB}"))
        answer = _read_answer(sock)  # not one byte of the body sent
        assert answer.status == 413 and answer.error()["code"] == "payload_too_large"
        assert _closed(sock)


def test_bodies_under_the_limit_still_work(gateway: Gateway) -> None:
    body = json.dumps({"query": "What is 2 + 2?"}).encode()
    with _connect(gateway) as sock:
        # Chunked, in small pieces, then a second request on the same (kept-alive) connection.
        sock.sendall(_post_head("/api/v1/runs", "Transfer-Encoding: chunked"))
        for i in range(0, len(body), 5):
            sock.sendall(_chunk(body[i : i + 5]))
        sock.sendall(b"0\r\n\r\n")
        first = _read_answer(sock)
        assert first.status == 201, first
        assert json.loads(first.body)["run_id"].startswith("run-")
        sock.sendall(_post_head("/api/v1/runs", f"Content-Length: {len(body)}") + body)
        second = _read_answer(sock)
        assert second.status == 201, second
    just_under = {"query": "x" * 100}
    padding = LIMIT - len(json.dumps(just_under).encode())
    payload = json.dumps(just_under).encode() + b" " * padding  # exactly the limit
    response = httpx.post(
        gateway.base_url + "/api/v1/runs",
        content=payload,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    # Accepted by the limit; the query is then too long for the run (8000 chars) or fine.
    assert response.status_code in (201, 422), response.text
    assert response.json().get("error", {}).get("code") != "payload_too_large"


def test_a_client_still_sending_reads_its_413(gateway: Gateway) -> None:
    """httpx sends the whole body before it reads: the gateway must not reset the connection
    under it (as closing with unread data does) when the body is a little over the limit."""

    def body() -> Iterator[bytes]:  # chunked, no Content-Length
        yield b'{"query": "'
        for _ in range(LIMIT // 1024 + 8):
            yield b"y" * 1024
        yield b'"}'

    with httpx.Client(base_url=gateway.base_url, timeout=30) as http:
        for _ in range(20):
            response = http.post(
                "/api/v1/runs", content=body(), headers={"content-type": "application/json"}
            )
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "payload_too_large"
        assert http.get("/healthz").status_code == 200  # and the connection is reusable


def test_unauthenticated_oversized_body_is_refused_unread(keyed_gateway: Gateway) -> None:
    assert _healthz(keyed_gateway) == 200
    total = 128 * MIB
    for path in ("/api/v1/runs", "/api/v1/runs/run-x/pause"):  # a body the route never reads
        with PeakMemory(keyed_gateway.proc.pid) as memory, _connect(keyed_gateway) as sock:
            head = _post_head(path, "Transfer-Encoding: chunked", "Content-Length: 5")
            pushed = _push_chunked(sock, head, total)
        assert pushed.answer is not None and pushed.answer.status in (401, 413), pushed.answer
        assert pushed.answer.error()["code"] in ("unauthorized", "payload_too_large")
        assert pushed.body_bytes_sent < SENT_SLACK, f"{path}: read {pushed.body_bytes_sent} bytes"
        assert memory.growth < MEMORY_SLACK, f"{path}: the gateway grew by {memory.growth} bytes"


# --- read timeouts -----------------------------------------------------------------------------


def _wait_all_closed(socks: list[socket.socket], deadline_s: float) -> list[socket.socket]:
    """Wait (on the sockets, with a deadline) until the server has closed each; the open rest."""
    open_socks = list(socks)
    for sock in open_socks:
        sock.setblocking(False)
    deadline = time.monotonic() + deadline_s
    while open_socks and time.monotonic() < deadline:
        readable, _, _ = select.select(open_socks, [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                open_socks.remove(sock)
    return open_socks


def test_stalled_headers_are_cut_off_while_the_gateway_answers(gateway: Gateway) -> None:
    stalled: list[socket.socket] = []
    try:
        for i in range(200):
            sock = _connect(gateway)
            stalled.append(sock)
            if i % 4:  # and a quarter that connect and send nothing at all
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        # Meanwhile the gateway answers others, promptly (a generous client timeout).
        for _ in range(5):
            assert _healthz(gateway) == 200
        still_open = _wait_all_closed(stalled, CLOSED_DEADLINE_S)
        assert not still_open, f"{len(still_open)} stalled connections still open"
        assert _healthz(gateway) == 200
    finally:
        for sock in stalled:
            sock.close()


def test_headers_trickled_byte_by_byte_are_cut_off(gateway: Gateway) -> None:
    """A deadline for the whole header block, not an idle timeout a trickle would reset."""
    trickle = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + b"X-Pad: " + b"a" * 10_000
    with _connect(gateway) as sock:
        deadline = time.monotonic() + CLOSED_DEADLINE_S
        closed = False
        for byte in trickle:
            # One byte whenever the server has said nothing for 0.1 s (the socket's timeout).
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable or time.monotonic() > deadline:
                closed = bool(readable) and _closed(sock)
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "a client trickling its headers was never cut off"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_stalled_body_gets_408_and_is_closed(gateway: Gateway, framing: str) -> None:
    with _connect(gateway) as sock:
        if framing == "chunked":
            sock.sendall(_post_head("/api/v1/runs", "Transfer-Encoding: chunked"))
            sock.sendall(_chunk(b'{"query": '))
        else:
            sock.sendall(_post_head("/api/v1/runs", "Content-Length: 100") + b'{"query": ')
        answer = _read_answer(sock)  # blocks until the server gives up on the body
        assert answer.status == 408, answer
        assert answer.error()["code"] == "request_timeout"
        assert _closed(sock)
    assert _healthz(gateway) == 200


def test_keep_alive_connection_survives_between_requests(gateway: Gateway) -> None:
    # Longer than the header timeout between two requests, within uvicorn's keep-alive (5 s).
    with _connect(gateway) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            assert _read_answer(sock).status == 200
            readable, _, _ = select.select([sock], [], [], HEADER_TIMEOUT_S * 2)
            assert not readable, "the server closed an idle keep-alive connection too early"


async def test_event_stream_outlives_the_read_timeouts(gateway: Gateway) -> None:
    outlive_s = 2 * max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        started = await http.post("/api/v1/runs", json={"query": "Plan my trip to Lisbon"})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        opened = time.monotonic()
        answered = False
        async with http.stream("GET", f"/api/v1/runs/{run_id}/events") as stream:
            assert stream.status_code == 200
            # Keep-alive comments every second drive this loop while the run waits for input.
            async for line in stream.aiter_lines():
                if line == "event: result":
                    break
                if not answered and time.monotonic() - opened > outlive_s:
                    # Still open well past both timeouts: answer, and the same stream must
                    # carry the run to its end (409 while the run is not waiting yet).
                    sent = await http.post(
                        f"/api/v1/runs/{run_id}/input", json={"text": "Two days"}
                    )
                    assert sent.status_code in (200, 409), sent.text
                    answered = sent.status_code == 200
            else:
                pytest.fail("the event stream ended without its result event")
        assert answered
