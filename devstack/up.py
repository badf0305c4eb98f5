"""`make up`: the Temporal dev server, the worker and the gateway, until Ctrl-C.

State lives in `.data/temporal.db`, so runs survive a restart of everything.
"""

from __future__ import annotations

import signal
import sys
import threading
import urllib.request
from pathlib import Path

from config import PROJECT_ROOT, get_settings
from devstack.processes import dev_server_command, port_open, start, stop, wait_until


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    settings = get_settings()
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    host, _, port_text = settings.temporal_address.rpartition(":")
    port = int(port_text)
    python = sys.executable
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    procs = []
    try:
        if port_open(host, port):
            sys.stderr.write(f"Temporal already answers on {host}:{port}; using it.\n")
        else:
            server = start(
                dev_server_command(
                    data_dir / "temporal.db",
                    host,
                    port,
                    settings.dev_server_ui_port,
                    log_level="warn",
                ),
                log=data_dir / "temporal.log",
            )
            procs.append(("Temporal dev server", server))
            wait_until(lambda: port_open(host, port), timeout=30, what="Temporal", proc=server)
        worker = start([python, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT)
        procs.append(("worker", worker))
        gateway = start(
            [
                python,
                "-m",
                "app",
                "--host",
                settings.gateway_host,
                "--port",
                str(settings.gateway_port),
            ],
            cwd=PROJECT_ROOT,
        )
        procs.append(("gateway", gateway))
        base = f"http://{settings.gateway_host}:{settings.gateway_port}"
        wait_until(lambda: _http_ok(base + "/healthz"), timeout=60, what="gateway", proc=gateway)
        sys.stdout.write(
            "\ndurable-agent is up (Ctrl-C stops everything):\n"
            f"  Temporal gRPC    {settings.temporal_address}  (state in {data_dir}/temporal.db)\n"
            f"  Temporal Web UI  http://{host}:{settings.dev_server_ui_port}\n"
            f"  worker           task queue {settings.task_queue!r}, LLM {settings.llm!r}\n"
            f"  gateway          {base}  (API docs {base}/docs)\n\n"
            f"Try: curl -s -X POST {base}/api/v1/runs -H 'content-type: application/json' "
            '-d \'{"query": "What is 17 * 23?"}\'\n\n'
        )
        sys.stdout.flush()
        while not stopping.wait(0.5):
            for name, proc in procs:
                if proc.poll() is not None:
                    sys.stderr.write(f"{name} exited with code {proc.returncode}; stopping.\n")
                    return 1
        return 0
    except (RuntimeError, TimeoutError) as exc:
        sys.stderr.write(f"could not start the stack: {exc}\n")
        return 1
    finally:
        # Gateway first (no new runs), then the worker, then the server.
        for name, proc in reversed(procs):
            sys.stdout.write(f"stopping {name}\n")
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
