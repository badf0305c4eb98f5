"""Connecting to Temporal, shared by the worker, the gateway and the tools.

Both sides use the pydantic data converter, so workflow inputs, outputs and query results are
pydantic models on the wire; with `DURABLE_AGENT_PAYLOAD_KEYS` they are encrypted (codec.py),
and with tracing on the client carries the trace (telemetry/tracing.py).
"""

from __future__ import annotations

import logging
import re
from typing import TypedDict

from pydantic import SecretStr
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, TLSConfig
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, RPCError

import shared
from codec import data_converter, payload_codec
from config import Settings
from telemetry.tracing import temporal_interceptors

logger = logging.getLogger(__name__)

# The search attributes the workflows keep current (all Keyword; `shared.SEARCH_ATTRIBUTES`),
# for filtering in the Web UI, the CLI (`temporal workflow list --query
# 'RunStatus="waiting_for_input"'`) and the gateway.
SEARCH_ATTRIBUTES = tuple(key.name for key in shared.SEARCH_ATTRIBUTES)


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    retry_budget_s: float | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """A client with the pydantic converter (and the codec the settings ask for).
    `retry_budget_s` bounds how long one call retries an unreachable server (the SDK default is
    10 s; a gateway should answer 503 sooner); `runtime` is the worker's, with its metrics.

    The one way the worker, the gateway, the tools and the tests reach Temporal, so a dev
    server, a self-hosted cluster with mutual TLS and Temporal Cloud differ only in settings."""
    retry = RetryConfig()
    if retry_budget_s is not None:
        retry = RetryConfig(max_elapsed_time_millis=int(retry_budget_s * 1000), max_retries=5)
    return await Client.connect(
        settings.temporal_address,
        **connection_options(settings),
        data_converter=data_converter(payload_codec(_secret(settings.payload_keys))),
        interceptors=temporal_interceptors(settings),
        lazy=lazy,
        retry_config=retry,
        runtime=runtime,
    )


class ConnectionOptions(TypedDict):
    namespace: str
    api_key: str | None
    tls: bool | TLSConfig


def connection_options(settings: Settings) -> ConnectionOptions:
    """Namespace, API key and TLS for `Client.connect`, from the settings.

    TLS is on when asked for, with an API key (Temporal Cloud accepts keys over TLS only) or
    with a client certificate; a certificate without its key (or the reverse) is refused here,
    naming both settings, rather than failing later in the TLS handshake."""
    tls: bool | TLSConfig = settings.temporal_tls or bool(settings.temporal_api_key)
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if (cert is None) != (key is None):
        raise ValueError(
            "DURABLE_AGENT_TEMPORAL_TLS_CERT and DURABLE_AGENT_TEMPORAL_TLS_KEY go together: "
            "set both (mutual TLS) or neither"
        )
    ca, server_name = settings.temporal_tls_ca, settings.temporal_tls_server_name
    if cert is not None or ca is not None or server_name is not None:
        tls = TLSConfig(
            client_cert=cert.read_bytes() if cert is not None else None,
            client_private_key=key.read_bytes() if key is not None else None,
            server_root_ca_cert=ca.read_bytes() if ca is not None else None,
            domain=server_name,
        )
    return ConnectionOptions(
        namespace=settings.namespace, api_key=settings.temporal_api_key, tls=tls
    )


def tls_problem(settings: Settings, error: BaseException) -> str | None:
    """What went wrong with TLS, in words naming the setting to change, when `error` (the SDK's
    connect error: rustls' reason inside a tonic error) is a TLS failure; None otherwise.

    A refused server certificate is a configuration error that no retry fixes: the worker stops
    on it, the gateway's /readyz says it (see `certificate_refused`)."""
    text = str(error)
    where = f"the Temporal server at {settings.temporal_address}"
    if "InvalidCertificate(UnknownIssuer" in text:
        trusted = settings.temporal_tls_ca or "the system's CAs"
        return (
            f"TLS: the certificate of {where} is not signed by a CA this client trusts "
            f"({trusted}); set DURABLE_AGENT_TEMPORAL_TLS_CA to the CA that signed it"
        )
    if "InvalidCertificate(NotValidForName" in text:
        names = re.findall(r'DnsName\(\\?"([^"\\]+)', text)
        expected = settings.temporal_tls_server_name or settings.temporal_address.rsplit(":", 1)[0]
        on_it = ", ".join(names) if names else "another name"
        return (
            f"TLS: the certificate of {where} is for {on_it}, not {expected}; set "
            "DURABLE_AGENT_TEMPORAL_TLS_SERVER_NAME to the name on the certificate"
        )
    if "InvalidCertificate(Expired" in text or "InvalidCertificate(NotValidYet" in text:
        return f"TLS: the certificate of {where} has expired or is not valid yet"
    if "InvalidCertificate(" in text:
        reason = text.split("InvalidCertificate(", 1)[1].split(")", 1)[0]
        return f"TLS: the certificate of {where} was refused ({reason})"
    uses_tls = settings.temporal_tls or settings.temporal_api_key or settings.temporal_tls_cert
    if uses_tls and ("close_notify" in text or "AlertReceived" in text):
        return (
            f"TLS: {where} ended the connection during the handshake; if it requires client "
            "certificates, check that DURABLE_AGENT_TEMPORAL_TLS_CERT is signed by a CA it trusts"
        )
    return None


def certificate_refused(error: BaseException) -> bool:
    """The client refused the server's certificate: wrong CA, wrong name, expired."""
    return "InvalidCertificate(" in str(error)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the search attributes that are missing (idempotent); return the ones added.

    On a cluster where this identity may not manage the namespace (Temporal Cloud), the failure
    is logged and the worker carries on: the attributes must then be created by an admin.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
        missing = [name for name in SEARCH_ATTRIBUTES if name not in known]
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes=dict.fromkeys(
                        missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    ),
                )
            )
            logger.info("registered search attributes %s", ", ".join(missing))
        return missing
    except RPCError as exc:
        if "already exists" in exc.message:
            return []
        logger.warning(
            "could not register search attributes %s (%s); create them as Keyword attributes "
            "before filtering runs by them",
            ", ".join(SEARCH_ATTRIBUTES),
            exc.message,
        )
        return []
