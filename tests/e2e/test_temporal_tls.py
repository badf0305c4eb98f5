"""A real TLS handshake: the worker, the gateway and the `temporal` CLI reach the dev server
through a TLS front that requires client certificates (mutual TLS, a private CA, a server
certificate for a DNS name), configured only by the `DURABLE_AGENT_TEMPORAL_TLS_*` settings that
docs/deploy.md gives. A wrong CA or a missing server name fails with a sentence naming the
setting to change: the worker stops, the gateway's /readyz says it.

The dev server has no TLS options, hence the front (tests/tls_proxy.py says why and what it
does); the certificates are made per test session (tests/tls_certs.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from config import PROJECT_ROOT
from devstack.processes import free_port, port_open, start, stop, temporal_binary, wait_until
from tests.conftest import DevServer
from tests.e2e.conftest import start_gateway
from tests.helpers import until
from tests.tls_certs import Pki, make_pki

SERVER_NAME = "temporal.test"


@dataclass
class TlsFront:
    address: str
    pki: Pki  # the cluster's CA, server and client certificates
    other: Pki  # another CA's: a client trusting it must refuse the server


@pytest.fixture(scope="module")
def tls_front(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsFront]:
    folder = tmp_path_factory.mktemp("tls")
    pki, other = make_pki(folder, "cluster", SERVER_NAME), make_pki(folder, "other", SERVER_NAME)
    port = free_port()
    proc = start(
        [
            sys.executable,
            "-m",
            "tests.tls_proxy",
            "--port",
            str(port),
            "--target",
            dev_server.address,
            "--cert",
            str(pki.server_cert),
            "--key",
            str(pki.server_key),
            "--client-ca",
            str(pki.ca),
        ],
        log=folder / "proxy.log",
        cwd=PROJECT_ROOT,
    )
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="TLS front", proc=proc)
    yield TlsFront(f"127.0.0.1:{port}", pki, other)
    stop(proc)


def tls_env(front: TlsFront, *, ca: Path, server_name: str | None = SERVER_NAME) -> dict[str, str]:
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": front.address,
        "DURABLE_AGENT_TASK_QUEUE": f"tls-{uuid.uuid4().hex}",
        "DURABLE_AGENT_TEMPORAL_TLS_CERT": str(front.pki.client_cert),
        "DURABLE_AGENT_TEMPORAL_TLS_KEY": str(front.pki.client_key),
        "DURABLE_AGENT_TEMPORAL_TLS_CA": str(ca),
    }
    if server_name is not None:
        env["DURABLE_AGENT_TEMPORAL_TLS_SERVER_NAME"] = server_name
    return env


def test_worker_gateway_and_cli_connect_over_mutual_tls(
    tls_front: TlsFront, tmp_path: Path
) -> None:
    env = tls_env(tls_front, ca=tls_front.pki.ca)
    # The worker and gateway know only the TLS front's address: a run that completes went
    # through two TLS connections (the gateway's start, the worker's polls).
    worker = start(
        [sys.executable, "worker.py"], env=env, log=tmp_path / "worker.log", cwd=PROJECT_ROOT
    )
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        assert httpx.get(f"{gateway.base_url}/readyz", timeout=10).json() == {"status": "ready"}
        created = httpx.post(
            f"{gateway.base_url}/api/v1/runs", json={"query": "What is 6 * 7?"}, timeout=30
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
        state = until(
            lambda: httpx.get(f"{gateway.base_url}/api/v1/runs/{run_id}", timeout=30).json(),
            lambda body: body["status"] in ("completed", "failed"),
            deadline_s=60,
            what="the run over TLS completed",
        )
        assert state["status"] == "completed", state
        assert "42" in state["answer"]
        # An operator's `temporal` CLI, with the same files, sees the same run.
        described = subprocess.run(
            [
                temporal_binary(),
                "workflow",
                "describe",
                "--workflow-id",
                run_id,
                "--address",
                tls_front.address,
                "--tls-ca-path",
                str(tls_front.pki.ca),
                "--tls-cert-path",
                str(tls_front.pki.client_cert),
                "--tls-key-path",
                str(tls_front.pki.client_key),
                "--tls-server-name",
                SERVER_NAME,
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert described.returncode == 0, described.stderr
        info = json.loads(described.stdout)["workflowExecutionInfo"]
        assert info["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED", info
    finally:
        stop(gateway.proc)
        stop(worker)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong CA", "not signed by a CA this client trusts"),
        ("no server name", f"is for {SERVER_NAME}, not 127.0.0.1"),
    ],
)
def test_a_refused_server_certificate_is_said_plainly(
    tls_front: TlsFront, tmp_path: Path, case: str, says: str
) -> None:
    if case == "wrong CA":
        env, setting = tls_env(tls_front, ca=tls_front.other.ca), "DURABLE_AGENT_TEMPORAL_TLS_CA"
    else:
        env = tls_env(tls_front, ca=tls_front.pki.ca, server_name=None)
        setting = "DURABLE_AGENT_TEMPORAL_TLS_SERVER_NAME"
    # The worker stops, with the reason and the setting to change (no endless retry loop).
    log = tmp_path / "worker.log"
    worker = start([sys.executable, "worker.py"], env=env, log=log, cwd=PROJECT_ROOT)
    try:
        assert worker.wait(timeout=60) != 0
    finally:
        stop(worker)
    said = log.read_text()
    assert says in said and setting in said, said
    assert "Traceback" not in said, said
    # The gateway starts (it must answer /healthz while Temporal is away) and /readyz says why
    # it is not ready.
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        ready = httpx.get(f"{gateway.base_url}/readyz", timeout=30)
        assert ready.status_code == 503
        message = ready.json()["error"]["message"]
        assert says in message and setting in message, ready.json()
    finally:
        stop(gateway.proc)
