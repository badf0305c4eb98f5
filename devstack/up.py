"""`make up`: the Temporal dev server, the worker and the gateway, supervised until Ctrl-C.

State lives in `.data/temporal.db`, so runs survive a restart of everything. A process that dies
is started again after a back-off (1 s, doubling to 30 s; reset once it has run for 30 s) while
the others keep running; five quick deaths in a row stop the stack. One stack per data folder:
a second `make up` names the running one and exits 1. Ctrl-C (or SIGTERM, SIGHUP) stops the
gateway, then the worker, then the server, even when nobody reads our output any more
(`make up | tee log`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from config import PROJECT_ROOT, Settings, get_settings
from devstack.processes import (
    StartCancelled,
    dev_server_command,
    port_open,
    start,
    stop,
    wait_until,
)

logger = logging.getLogger("devstack")

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
# A process that ran this long before dying was healthy: its next restart waits BACKOFF_FIRST_S.
STABLE_AFTER_S = 30.0
# This many deaths in a row, each before STABLE_AFTER_S, is a process that cannot start (a bad
# setting, say): restarting it for ever would only hide the error.
MAX_QUICK_DEATHS = 5

LOCK_FILE = "stack.lock"
STATE_FILE = "stack.json"


def backoff_s(deaths: int) -> float:
    """The wait before restarting a process that died `deaths` times in a row (1 = first)."""
    return float(min(BACKOFF_FIRST_S * 2 ** (deaths - 1), BACKOFF_MAX_S))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Service:
    """One supervised process."""

    name: str
    command: list[str]
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    deaths: int = 0  # in a row, each before STABLE_AFTER_S
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = start(self.command, log=self.log, cwd=PROJECT_ROOT, die_with_parent=True)
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


@dataclass
class Stack:
    settings: Settings
    data_dir: Path
    services: list[Service] = field(default_factory=list)
    external_temporal: bool = False

    @property
    def gateway_url(self) -> str:
        return f"http://{self.settings.gateway_host}:{self.settings.gateway_port}"

    def describe(self) -> dict[str, Any]:
        """What `stack.json` holds: enough for a second `make up` (and the tests) to find us."""
        host = self.settings.temporal_address.rpartition(":")[0]
        return {
            "pid": os.getpid(),
            "project": str(PROJECT_ROOT),
            "temporal": self.settings.temporal_address,
            "web_ui": None
            if self.external_temporal
            else f"http://{host}:{self.settings.dev_server_ui_port}",
            "gateway": self.gateway_url,
            "processes": {s.name: s.pid for s in self.services},
        }

    def write_state(self) -> None:
        tmp = self.data_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2))
        tmp.replace(self.data_dir / STATE_FILE)  # readers never see half a file

    def supervise_once(self) -> None:
        """Notice dead processes and restart those whose back-off is over."""
        now = time.monotonic()
        for service in self.services:
            assert service.proc is not None
            if service.restart_at is None:
                code = service.proc.poll()
                if code is None:
                    continue
                if now - service.started_at >= STABLE_AFTER_S:
                    service.deaths = 0
                service.deaths += 1
                if service.deaths >= MAX_QUICK_DEATHS:
                    raise RuntimeError(
                        f"{service.name} {describe_exit(code)}, its {service.deaths}th quick "
                        "death in a row; giving up"
                    )
                delay = backoff_s(service.deaths)
                service.restart_at = now + delay
                logger.warning(
                    "%s (pid %d) %s; restarting it in %.0fs",
                    service.name,
                    service.proc.pid,
                    describe_exit(code),
                    delay,
                )
            elif now >= service.restart_at:
                service.restart_at = None
                service.start()
                logger.warning("%s restarted (pid %d)", service.name, service.pid)
                self.write_state()

    def stop_all(self) -> None:
        """Gateway first (no new runs), then the worker, then the server. Nothing here may raise
        before every process is stopped."""
        for service in reversed(self.services):
            if service.proc is None or service.proc.poll() is not None:
                continue
            logger.info("stopping %s", service.name)
            try:
                stop(service.proc)
            except Exception:  # noqa: BLE001 - the others must be stopped all the same
                logger.exception("could not stop %s", service.name)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
            return bool(response.status == 200)
    except OSError:
        return False


def _holder(port: int) -> str:
    """Which process listens on `port`, as well as this user may know."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    break
                try:
                    cmd = " ".join(psutil.Process(conn.pid).cmdline())
                except psutil.Error:
                    cmd = "?"
                return f"pid {conn.pid}: {cmd}"
    except psutil.AccessDenied:
        pass
    return "another process"


def _say(text: str) -> None:
    """Write to stdout; a reader that went away (`make up | tee`, then Ctrl-C) is no error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError:
        pass


def _lock(data_dir: Path) -> IO[str] | None:
    """Hold the data folder's lock for as long as this process lives; None if another has it.
    The kernel drops it when we die, so a crash leaves nothing stale behind."""
    handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _already_running(data_dir: Path) -> str:
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return f"durable-agent is already running on {data_dir} (it is still starting).\n"
    ui = f", Web UI {state['web_ui']}" if state.get("web_ui") else ""
    return (
        f"durable-agent is already running (pid {state['pid']}, data in {data_dir}):\n"
        f"  Temporal {state['temporal']}{ui}, gateway {state['gateway']}\n"
        f"Use that one, stop it (Ctrl-C where it runs, or kill {state['pid']}), or start "
        "another with its own DURABLE_AGENT_DATA_DIR and ports.\n"
    )


def _busy_ports(settings: Settings, start_temporal: bool) -> list[str]:
    wanted = [("gateway", settings.gateway_host, settings.gateway_port)]
    if start_temporal:
        host = settings.temporal_address.rpartition(":")[0]
        wanted.append(("Temporal Web UI", host, settings.dev_server_ui_port))
    return [
        f"  port {port} ({what}) is in use by {_holder(port)}"
        for what, host, port in wanted
        if port_open(host, port)
    ]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s up: %(message)s")
    settings = get_settings()
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(data_dir)
    if lock is None:
        sys.stderr.write(_already_running(data_dir))
        return 1
    # Left by a launcher that was killed: it describes nothing that runs.
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    host, _, port_text = settings.temporal_address.rpartition(":")
    port = int(port_text)
    stack = Stack(settings, data_dir, external_temporal=port_open(host, port))
    busy = _busy_ports(settings, start_temporal=not stack.external_temporal)
    if busy:
        sys.stderr.write("cannot start durable-agent:\n" + "\n".join(busy) + "\n")
        return 1

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    python = sys.executable
    try:
        if stack.external_temporal:
            logger.info("Temporal already answers on %s; using it", settings.temporal_address)
        else:
            server = Service(
                "Temporal dev server",
                dev_server_command(
                    data_dir / "temporal.db",
                    host,
                    port,
                    settings.dev_server_ui_port,
                    log_level="warn",
                ),
                log=data_dir / "temporal.log",
            )
            stack.services.append(server)
            server.start()
            wait_until(
                lambda: port_open(host, port),
                timeout=30,
                what="Temporal",
                proc=server.proc,
                cancel=stopping.is_set,
            )
        stack.services.append(Service("worker", [python, str(PROJECT_ROOT / "worker.py")]))
        stack.services[-1].start()
        gateway = Service(
            "gateway",
            [
                python,
                "-m",
                "app",
                "--host",
                settings.gateway_host,
                "--port",
                str(settings.gateway_port),
            ],
        )
        stack.services.append(gateway)
        gateway.start()
        stack.write_state()
        base = stack.gateway_url
        wait_until(
            lambda: _http_ok(base + "/healthz"),
            timeout=60,
            what="gateway",
            proc=gateway.proc,
            cancel=stopping.is_set,
        )
        web_ui = stack.describe()["web_ui"] or "(not ours: Temporal was already running)"
        _say(
            "\ndurable-agent is up (Ctrl-C stops everything):\n"
            f"  Temporal gRPC    {settings.temporal_address}  (state in {data_dir}/temporal.db)\n"
            f"  Temporal Web UI  {web_ui}\n"
            f"  worker           task queue {settings.task_queue!r}, LLM {settings.llm!r}\n"
            f"  gateway          {base}  (API docs {base}/docs)\n\n"
            f"Try: curl -s -X POST {base}/api/v1/runs -H 'content-type: application/json' "
            '-d \'{"query": "What is 17 * 23?"}\'\n\n'
        )
        while not stopping.wait(0.2):
            stack.supervise_once()
        return 0
    except StartCancelled:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        logger.error("could not keep the stack running: %s", exc)
        return 1
    finally:
        stack.stop_all()
        (data_dir / STATE_FILE).unlink(missing_ok=True)
        _quiet_stdout()


def _quiet_stdout() -> None:
    """If stdout's reader is gone, point stdout at /dev/null so that the interpreter's final
    flush does not print a BrokenPipeError (the recipe of the `signal` module's docs)."""
    try:
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
