"""The attacks of the transport hardening, against the gateway as `python -m app` starts it and,
as the baseline, under plain `uvicorn app.main:app` (how it was started before).

    .venv/bin/python -m bench.transport_abuse [--body-mib 200] [--stalled 400] [--baseline-dir D]

`--baseline-dir` runs the baseline from another source tree, e.g. the code before the hardening:
`mkdir /tmp/old && git archive 2a50ec7 | tar -x -C /tmp/old`.

No Temporal is needed (the gateway connects lazily). Prints, for each: the status of a chunked
body with a false `Content-Length: 5`, the bytes the client got to send, the gateway's peak
memory growth (VmHWM), and how many of N connections stalled mid-headers are still open after
the header timeout plus 5 s, with the slowest `/healthz` meanwhile.
"""

from __future__ import annotations

import argparse
import re
import select
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from config import PROJECT_ROOT
from devstack.processes import free_port, start, stop, wait_until

MIB = 1024 * 1024
HEADER_TIMEOUT_S = 2.0


def _kib(pid: int, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert match
    return int(match.group(1))


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def lying_body(port: int, pid: int, total: int) -> tuple[str, int, int]:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak
    before = _kib(pid, "VmRSS")
    head = (
        b"POST /api/v1/runs HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
    )
    piece = b"%x\r\n" % (256 * 1024) + b"x" * (256 * 1024) + b"\r\n"
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending, ended = memoryview(b""), False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not pending and not ended:
                ended = sent >= total
                pending = memoryview(b"0\r\n\r\n" if ended else piece)
            writing = [sock] if pending else []
            readable, writable, _ = select.select([sock], writing, [], 1)
            if readable:
                try:
                    answer = sock.recv(4096)
                except ConnectionResetError:
                    pass
                break
            if writable:
                try:
                    n = sock.send(pending)
                except OSError:
                    pending, ended = memoryview(b""), True
                    continue
                sent += n
                pending = pending[n:]
    status = answer.split(b"\r\n", 1)[0].decode() or "no answer"
    return status, sent, (_kib(pid, "VmHWM") - before) * 1024


def stalled(port: int, base: str, count: int) -> tuple[int, float]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Slow: ")
        socks.append(sock)
    slowest = 0.0
    deadline = time.monotonic() + HEADER_TIMEOUT_S + 5
    while time.monotonic() < deadline:
        began = time.monotonic()
        httpx.get(base + "/healthz", timeout=30)
        slowest = max(slowest, time.monotonic() - began)
        readable, _, _ = select.select(socks, [], [], 0.2)
        for sock in readable:
            try:
                data = sock.recv(1024)
            except ConnectionResetError:
                data = b""
            if not data:
                socks.remove(sock)
                sock.close()
    for sock in socks:
        sock.close()
    return len(socks), slowest


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--body-mib", type=int, default=200)
    parser.add_argument("--stalled", type=int, default=400)
    parser.add_argument("--baseline-dir", type=Path, default=PROJECT_ROOT)
    args = parser.parse_args()
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": "127.0.0.1:9",  # nothing there: not needed
        "DURABLE_AGENT_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    runs = (
        ("uvicorn app.main:app", ["uvicorn", "app.main:app"], args.baseline_dir),
        ("python -m app", ["app"], PROJECT_ROOT),
    )
    for name, module, source in runs:
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            proc = start(
                [sys.executable, "-m", *module, "--port", str(port), "--log-level", "warning"],
                env=env,
                log=Path(tmp) / "gateway.log",
                cwd=source,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                wait_until(lambda b=base: _healthy(b), timeout=60, what="gateway", proc=proc)
                status, sent, growth = lying_body(port, proc.pid, args.body_mib * MIB)
                still_open, slowest = stalled(port, base, args.stalled)
            finally:
                stop(proc)
        sys.stdout.write(
            f"{name:22} {args.body_mib} MiB chunked, Content-Length 5: {status!r}, "
            f"client sent {sent / MIB:.1f} MiB, gateway peak +{growth / MIB:.1f} MiB; "
            f"{still_open}/{args.stalled} stalled connections open after "
            f"{HEADER_TIMEOUT_S + 5:.0f} s, slowest /healthz {slowest * 1000:.0f} ms\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
