"""Encrypted payloads end to end: a worker and a gateway with `DURABLE_AGENT_PAYLOAD_KEYS`, the
history as Temporal stores it (no plaintext), read back through the gateway, through the real
`temporal` CLI with `--codec-endpoint` (the gateway's codec server), and replayed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Replayer

from codec import payload_codec
from config import PROJECT_ROOT, Settings
from devstack.processes import start, stop, temporal_binary
from plugin import DurableAgentPlugin
from temporal_client import connect
from tests.conftest import DevServer
from tests.e2e.conftest import start_gateway
from tests.e2e.test_http_api import assert_error, wait_for

OLD_KEY = "k1:" + base64.b64encode(b"o" * 32).decode()
NEW_KEY = "k2:" + base64.b64encode(b"n" * 32).decode()
API_KEY = "codec-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class EncryptedStack:
    base_url: str
    address: str
    task_queue: str
    logs: Path


@pytest.fixture(scope="module")
def encrypted(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EncryptedStack]:
    logs = tmp_path_factory.mktemp("encrypted")
    task_queue = f"enc-{uuid.uuid4().hex}"
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": task_queue,
        "DURABLE_AGENT_DATA_DIR": str(logs),
        "DURABLE_AGENT_NOTES_FILE": str(logs / "notes.txt"),
        # Rotated once: k2 encrypts, k1 still decrypts.
        "DURABLE_AGENT_PAYLOAD_KEYS": f"{NEW_KEY},{OLD_KEY}",
        "DURABLE_AGENT_API_KEYS": f"{API_KEY}:acme",
    }
    worker = start(
        [sys.executable, "worker.py"], env=env, log=logs / "worker.log", cwd=PROJECT_ROOT
    )
    gateway = start_gateway(env, logs / "gateway.log")
    try:
        yield EncryptedStack(gateway.base_url, dev_server.address, task_queue, logs)
    finally:
        stop(gateway.proc)
        stop(worker)


def temporal_show(stack: EncryptedStack, run_id: str, *codec: str) -> str:
    cmd = [
        temporal_binary(),
        "workflow",
        "show",
        "--address",
        stack.address,
        "-w",
        run_id,
        "--output",
        "json",
        *codec,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def payload_bytes(history_json: str) -> bytes:
    """Every payload's data in a history printed as JSON (where data is base64)."""
    found: list[bytes] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and isinstance(node.get("data"), str):
                found.append(base64.b64decode(node["data"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    assert found, "no payload in the history"
    return b"\n".join(found)


async def test_history_is_encrypted_and_read_back_by_gateway_cli_and_replayer(
    encrypted: EncryptedStack,
) -> None:
    marker = f"Lisbon-{uuid.uuid4().hex[:8]}"
    answer = f"museums-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=encrypted.base_url, timeout=30, headers=AUTH) as http:
        started = await http.post("/api/v1/runs", json={"query": f"Plan my trip to {marker}"})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        await wait_for(http, run_id, "waiting_for_input")
        answered = await http.post(f"/api/v1/runs/{run_id}/input", json={"text": answer})
        assert answered.status_code == 200, answered.text
        state = await wait_for(http, run_id, "completed")
    # The gateway decrypts: the run reads as it always did.
    assert marker in state["query"] and answer in state["answer"]

    # Temporal holds no plaintext of the query or the answer: every byte of the history.
    plain = await connect(Settings(temporal_address=encrypted.address))
    history = await plain.get_workflow_handle(run_id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    assert marker.encode() not in raw and answer.encode() not in raw
    assert b"binary/encrypted" in raw and b"encryption-key-id" in raw
    shown = payload_bytes(temporal_show(encrypted, run_id))
    assert marker.encode() not in shown and answer.encode() not in shown

    # The real CLI, pointed at the gateway's codec server with a key, reads it back.
    decoded = temporal_show(
        encrypted,
        run_id,
        "--codec-endpoint",
        f"{encrypted.base_url}/codec",
        "--codec-auth",
        f"Bearer {API_KEY}",
    )
    assert "binary/encrypted" not in decoded
    data = payload_bytes(decoded)
    assert marker.encode() in data and answer.encode() in data

    # Replay with the codec on; without it, the payloads cannot even be read.
    codec = payload_codec(f"{NEW_KEY},{OLD_KEY}")
    replayer = Replayer(workflows=[], plugins=[DurableAgentPlugin(codec=codec)])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_codec_server_protocol_auth_and_cors(encrypted: EncryptedStack) -> None:
    plain = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'"secret text"').decode(),
            }
        ]
    }
    async with httpx.AsyncClient(base_url=encrypted.base_url, timeout=30) as http:
        assert_error(await http.post("/codec/encode", json=plain), 401, "unauthorized")
        assert_error(await http.post("/codec/decode", json=plain), 401, "unauthorized")
        encoded = await http.post("/codec/encode", json=plain, headers=AUTH)
        assert encoded.status_code == 200, encoded.text
        sealed = encoded.json()["payloads"][0]
        metadata = {k: base64.b64decode(v) for k, v in sealed["metadata"].items()}
        assert metadata == {"encoding": b"binary/encrypted", "encryption-key-id": b"k2"}
        assert b"secret" not in base64.b64decode(sealed["data"])
        decoded = await http.post("/codec/decode", json=encoded.json(), headers=AUTH)
        assert decoded.json() == plain
        # A payload in clear passes through decode untouched (histories from before).
        assert (await http.post("/codec/decode", json=plain, headers=AUTH)).json() == plain

        # Bad input: the gateway's 422s.
        assert_error(
            await http.post("/codec/decode", json={"payloads": 3}, headers=AUTH),
            422,
            "invalid_input",
        )
        tampered = json.loads(encoded.text)
        data = bytearray(base64.b64decode(tampered["payloads"][0]["data"]))
        data[-1] ^= 1
        tampered["payloads"][0]["data"] = base64.b64encode(bytes(data)).decode()
        assert_error(
            await http.post("/codec/decode", json=tampered, headers=AUTH), 422, "invalid_input"
        )
        unknown = json.loads(encoded.text)
        unknown["payloads"][0]["metadata"]["encryption-key-id"] = base64.b64encode(b"k9").decode()
        error = assert_error(
            await http.post("/codec/decode", json=unknown, headers=AUTH), 422, "invalid_input"
        )
        assert "k9" in error["message"]

        # The Web UI calls from its own origin: preflight and response carry CORS headers.
        ui = "http://127.0.0.1:8233"
        preflight = await http.options(
            "/codec/decode",
            headers={
                "Origin": ui,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ui
        assert "x-namespace" in preflight.headers["access-control-allow-headers"].lower()
        answered = await http.post(
            "/codec/decode",
            json=plain,
            headers={**AUTH, "Origin": ui, "X-Namespace": "default"},
        )
        assert answered.headers["access-control-allow-origin"] == ui
        # Another origin gets no CORS grant; other paths never do.
        stranger = await http.post(
            "/codec/decode", json=plain, headers={**AUTH, "Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in stranger.headers
        runs = await http.get("/api/v1/runs", headers={**AUTH, "Origin": ui})
        assert "access-control-allow-origin" not in runs.headers


async def test_codec_endpoint_without_keys_is_a_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/codec/decode", json={"payloads": []})
    assert_error(response, 404, "codec_not_enabled")
