"""Settings -> the arguments `Client.connect` gets: a dev server, an API key (Temporal Cloud),
mutual TLS with a private CA. Every process connects through `temporal_client.connect`, so this
is where a secured cluster's configuration is checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

import temporal_client
from config import Settings
from temporal_client import connect, connection_options


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the shell running the tests exports does not leak into these settings."""
    for name in list(os.environ):
        if name.startswith("DURABLE_AGENT_"):
            monkeypatch.delenv(name)


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings as a deployment gives them: environment variables, no .env file."""
    for name, value in env.items():
        monkeypatch.setenv(f"DURABLE_AGENT_{name}", value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_dev_server_plain() -> None:
    options = connection_options(Settings(_env_file=None))  # type: ignore[call-arg]
    assert options == {"namespace": "default", "api_key": None, "tls": False}


def test_api_key_turns_tls_on(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(
        monkeypatch,
        TEMPORAL_ADDRESS="eu-west-1.aws.api.temporal.io:7233",
        NAMESPACE="agents.a1b2c",
        TEMPORAL_API_KEY="key-123",
    )
    assert connection_options(settings) == {
        "namespace": "agents.a1b2c",
        "api_key": "key-123",
        "tls": True,
    }
    assert "key-123" not in repr(settings)


def test_mutual_tls_reads_the_pem_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for name, path in files.items():
        path.write_bytes(f"-----BEGIN {name.upper()}-----\n".encode())
    settings = _settings(
        monkeypatch,
        NAMESPACE="agents.a1b2c",
        TEMPORAL_TLS_CERT=str(files["cert"]),
        TEMPORAL_TLS_KEY=str(files["key"]),
        TEMPORAL_TLS_CA=str(files["ca"]),
        TEMPORAL_TLS_SERVER_NAME="temporal.internal",
    )
    options = connection_options(settings)
    assert options["namespace"] == "agents.a1b2c"
    assert options["api_key"] is None
    assert options["tls"] == TLSConfig(
        client_cert=b"-----BEGIN CERT-----\n",
        client_private_key=b"-----BEGIN KEY-----\n",
        server_root_ca_cert=b"-----BEGIN CA-----\n",
        domain="temporal.internal",
    )


def test_private_ca_alone_verifies_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "ca.pem").write_bytes(b"ca")
    options = connection_options(_settings(monkeypatch, TEMPORAL_TLS_CA=str(tmp_path / "ca.pem")))
    assert options["tls"] == TLSConfig(server_root_ca_cert=b"ca")


@pytest.mark.parametrize("only", ["TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"])
def test_half_a_key_pair_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, only: str
) -> None:
    (tmp_path / "one.pem").write_bytes(b"x")
    settings = _settings(monkeypatch, **{only: str(tmp_path / "one.pem")})
    with pytest.raises(ValueError, match="TEMPORAL_TLS_CERT and DURABLE_AGENT_TEMPORAL_TLS_KEY"):
        connection_options(settings)


async def test_connect_passes_them_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`connect` itself hands the options over unchanged, with the address and converter."""
    (tmp_path / "c.pem").write_bytes(b"c")
    (tmp_path / "k.pem").write_bytes(b"k")
    seen: dict[str, Any] = {}

    async def fake_connect(target_host: str, **kwargs: Any) -> Client:
        seen.update(kwargs, target_host=target_host)
        return object()  # type: ignore[return-value]

    monkeypatch.setattr(temporal_client.Client, "connect", fake_connect)
    settings = _settings(
        monkeypatch,
        TEMPORAL_ADDRESS="temporal.example.com:7233",
        NAMESPACE="prod",
        TEMPORAL_TLS_CERT=str(tmp_path / "c.pem"),
        TEMPORAL_TLS_KEY=str(tmp_path / "k.pem"),
    )
    await connect(settings, lazy=True)
    assert seen["target_host"] == "temporal.example.com:7233"
    assert seen["namespace"] == "prod"
    assert seen["tls"] == TLSConfig(client_cert=b"c", client_private_key=b"k")
    assert seen["lazy"] is True
    assert seen["data_converter"] is pydantic_data_converter  # no codec configured


# The SDK's connect errors as they read (captured against tests/tls_proxy.py, SDK core's rustls).
REFUSED_CLIENT_CERT = (
    "Failed client connect: `get_system_info` call error after connection: Status { code: "
    'Unknown, message: "transport error", source: Some(tonic::transport::Error(Transport, '
    'hyper::Error(Io, Custom { kind: UnexpectedEof, error: "peer closed connection without '
    'sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/" }))) }'
)
EXPIRED = (
    "Failed client connect: Server connection error: tonic::transport::Error(Transport, "
    "ConnectError(Custom { kind: InvalidData, error: InvalidCertificate(Expired) }))"
)


def test_tls_problems_name_the_setting_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(
        monkeypatch,
        TEMPORAL_ADDRESS="temporal.internal:7233",
        TEMPORAL_TLS="true",
    )
    said = temporal_client.tls_problem(settings, RuntimeError(REFUSED_CLIENT_CERT))
    assert said is not None and "DURABLE_AGENT_TEMPORAL_TLS_CERT" in said
    # The server may have gone away mid-handshake: said, but not taken as a wrong setting.
    assert not temporal_client.certificate_refused(RuntimeError(REFUSED_CLIENT_CERT))
    said = temporal_client.tls_problem(settings, RuntimeError(EXPIRED))
    where = "the Temporal server at temporal.internal:7233"
    assert said == f"TLS: the certificate of {where} has expired or is not valid yet"
    assert temporal_client.certificate_refused(RuntimeError(EXPIRED))
    # An outage is not a TLS problem.
    assert temporal_client.tls_problem(settings, RuntimeError("Connection refused")) is None
