"""Every setting of durable-agent, in one place.

Values come from environment variables prefixed ``DURABLE_AGENT_`` (or a ``.env`` file), e.g.
``DURABLE_AGENT_TEMPORAL_ADDRESS=temporal.example.com:7233``. Nothing else in the project reads
the environment; workflows never read settings at all (their knobs travel in the run's input).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.limits import Limits
from workflows.state import RunSettings

PROJECT_ROOT = Path(__file__).resolve().parent
_LIMITS = Limits()
_RUN = RunSettings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DURABLE_AGENT_", env_file=".env", extra="ignore")

    # Where Temporal is. The same worker and gateway run against the embedded dev server, a
    # self-hosted cluster or Temporal Cloud.
    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "durable-agent"
    temporal_api_key: str | None = Field(default=None, repr=False)
    temporal_tls: bool = False
    # Mutual TLS (a self-hosted cluster, or a Temporal Cloud namespace with certificates): PEM
    # files. Setting the client certificate and key turns TLS on. The CA is needed only when
    # the server's certificate is not signed by a public authority; the server name only when
    # it differs from the host in `temporal_address` (connecting through a proxy or an IP).
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None

    # The embedded dev server started by `make up`.
    dev_server_ui_port: int = 8233
    data_dir: Path = PROJECT_ROOT / ".data"

    # Gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # How long the gateway waits for a worker to answer a query before it gives up (503).
    query_timeout_s: float = 10.0
    # How long one gateway call keeps retrying an unreachable Temporal before answering 503.
    temporal_retry_budget_s: float = 2.0
    # Requests with a larger body are refused with 413 (counted as received, whatever the headers
    # say). At most 2 MiB, so that a body that passes always fits in one Temporal request (gRPC
    # refuses messages over 4 MB).
    max_body_bytes: int = Field(default=64 * 1024, gt=0, le=2 * 1024 * 1024)
    # A client must send a request's head (request line and headers) within `header_timeout_s`,
    # and its body within `body_timeout_s` after that; otherwise its connection is closed (408 for
    # a late body). Responses are never timed: event streams last as long as they need.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    # Seconds between keep-alive comments on an idle event stream.
    sse_ping_s: float = 15.0
    # Event streams one tenant (or, without API keys, everyone) may hold open on one gateway
    # process: each polls its run's worker; past this, 429.
    max_streams_per_tenant: int = Field(default=100, ge=1, le=10_000)
    # How often an event stream asks the run for new events (a read-only query).
    sse_poll_interval_s: float = 0.1
    # "key1:tenant1,key2:tenant2". Unset: no authentication (the local dev set-up).
    api_keys: str | None = Field(default=None, repr=False)
    # The gateway's HMAC key: run ids derived from Idempotency-Keys, input update ids, page
    # tokens. Unset: a random key kept in <data_dir>/gateway.secret (made on first start), which
    # every gateway on this host shares; gateways on several hosts must all set the same value.
    secret_key: SecretStr | None = Field(default=None, repr=False)

    # Runs: defaults copied into each run's input (so a run keeps the values it started with);
    # their bounds are `workflows.state.RunSettings`'.
    input_timeout_s: float = _RUN.input_timeout_s
    max_input_chars: int = _RUN.max_input_chars
    max_query_chars: int = 8000
    max_context_rounds: int = _RUN.max_context_rounds
    reflection_threshold: float = _RUN.reflection_threshold
    max_reflection_retries: int = _RUN.max_reflection_retries
    history_threshold: int = _RUN.history_threshold

    # Bounds on untrusted data (graphs, expressions, templates, inputs, node outputs). Each may
    # be lowered, never raised past the ceiling in `workflows/limits.py`; README "Limits".
    max_expression_chars: int = _LIMITS.max_expression_chars
    max_expression_nesting: int = _LIMITS.max_expression_nesting
    max_expression_additions: int = _LIMITS.max_expression_additions
    max_expression_references: int = _LIMITS.max_expression_references
    max_template_chars: int = _LIMITS.max_template_chars
    max_template_expressions: int = _LIMITS.max_template_expressions
    max_graph_nodes: int = _LIMITS.max_graph_nodes
    max_graph_edges: int = _LIMITS.max_graph_edges
    max_graph_bytes: int = _LIMITS.max_graph_bytes
    max_node_expressions: int = _LIMITS.max_node_expressions
    max_input_depth: int = _LIMITS.max_input_depth
    max_input_bytes: int = _LIMITS.max_input_bytes
    max_node_output_bytes: int = _LIMITS.max_node_output_bytes
    max_variables_bytes: int = _LIMITS.max_variables_bytes
    max_parallel_nodes: int = _LIMITS.max_parallel_nodes
    max_node_read_bytes: int = _LIMITS.max_node_read_bytes
    max_run_steps: int = _LIMITS.max_run_steps

    # LLM and tools. `llm` is "offline" (built in, deterministic) or "openai" (any server that
    # speaks the OpenAI chat completions API: OpenAI, Azure, vLLM, Ollama, LM Studio).
    llm: str = "offline"
    openai_base_url: str | None = None
    openai_api_key: str | None = Field(default=None, repr=False)
    model: str = "gpt-4o-mini"
    openai_timeout_s: float = 60.0
    # The most tokens any one answer may have (unset: the server's own limit).
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    # Sampling temperature of every call (unset: the server's default; 0 repeats answers).
    temperature: float | None = Field(default=None, ge=0, le=2)
    # How often a malformed structured answer is sent back to the model with the error.
    llm_json_retries: int = 2
    # USD per million tokens (input, output), by model; unknown models cost 0.
    prices: dict[str, tuple[float, float]] = {
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4o": (2.50, 10.00),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1": (2.00, 8.00),
    }
    knowledge_dir: Path = PROJECT_ROOT / "activities" / "knowledge"
    # Where the `append_note` tool writes.
    notes_file: Path = PROJECT_ROOT / ".data" / "notes.txt"
    # The operator's tools file: Python functions and MCP servers (README "Your own tools").
    # A missing file means no such tools.
    tools_file: Path | None = PROJECT_ROOT / "tools.yaml"
    # Whether installed packages may contribute tools (entry point group `durable_agent.tools`).
    tool_entry_points: bool = True
    # How long listing one MCP server's tools may take before the run goes on without it.
    mcp_list_timeout_s: float = Field(default=20.0, gt=0, le=600)
    # The graph catalog (graphs/*.yaml|json) the gateway serves and starts by name.
    graphs_dir: Path = PROJECT_ROOT / "graphs"
    # The agent catalog (agents/*.yaml|json): definitions runs and graph `agent` nodes start by
    # name; `default.yaml` is what a run without `agent` runs.
    agents_dir: Path = PROJECT_ROOT / "agents"

    # Worker.
    max_cached_workflows: int = 1000
    max_concurrent_activities: int = 100
    # A workflow task on a worker that died is retried elsewhere after this (Temporal's default is
    # 10 s); runs take it from their start options.
    workflow_task_timeout_s: float = 5.0
    # When a worker dies, its cached runs' next tasks wait this long on its sticky queue before
    # any worker may take them (the SDK default is 10 s).
    sticky_schedule_to_start_s: float = 3.0
    # On SIGTERM the worker stops taking tasks and lets running activities finish for this long;
    # past it they are cancelled and Temporal retries them on another worker. Keep it below the
    # platform's kill grace period (Kubernetes' terminationGracePeriodSeconds, 30 s by default).
    worker_shutdown_grace_s: float = Field(default=20.0, ge=0)
    # On SIGTERM the gateway stops accepting connections and ends its event streams cleanly
    # (clients reconnect elsewhere with Last-Event-ID); other requests get this long to finish.
    gateway_shutdown_grace_s: float = Field(default=10.0, ge=0)

    # Observability (docs/operations.md). Logs: "text" or "json" (one object a line, with the
    # run's ids). The worker's Prometheus endpoint (the SDK runtime's): unset = none.
    log_format: Literal["text", "json"] = "text"
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Tracing follows the standard OpenTelemetry variables (telemetry/tracing.py); these two
    # decide whether it is on at all.
    otel_traces_exporter: str = Field(
        default="none",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
    )
    otel_sdk_disabled: bool = Field(
        default=False, validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled")
    )

    # Payload encryption (codec.py): "keyid:base64key,..." (AES-256/192/128). The first key
    # encrypts; every listed key decrypts, so a rotation puts the new key first and keeps the
    # old ones until no history needs them. Unset: payloads are stored in clear.
    payload_keys: SecretStr | None = Field(default=None, repr=False)
    # Origins allowed to call the codec endpoint from a browser (the Temporal Web UI).
    codec_cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"

    @property
    def tracing_enabled(self) -> bool:
        exporters = {e.strip() for e in self.otel_traces_exporter.split(",")} - {"", "none"}
        return bool(exporters) and not self.otel_sdk_disabled

    @model_validator(mode="after")
    def _limits_within_ceilings(self) -> Settings:
        self.limits()  # a value past its ceiling stops the process at start, with its name
        self.run_settings()
        return self

    def run_settings(self) -> RunSettings:
        """The knobs each run starts with (pinned in its input)."""
        return RunSettings(**{name: getattr(self, name) for name in RunSettings.model_fields})

    def limits(self) -> Limits:
        return Limits(**{name: getattr(self, name) for name in Limits.model_fields})


def parse_api_keys(spec: str | None) -> dict[str, str]:
    """`"key1:acme,key2:globex"` -> `{"key1": "acme", "key2": "globex"}`."""
    keys: dict[str, str] = {}
    for entry in (spec or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, tenant = entry.rpartition(":")
        if not sep or not key or not tenant:
            raise ValueError(
                "DURABLE_AGENT_API_KEYS must look like 'key1:tenant1,key2:tenant2' "
                "(an entry has no ':tenant')"
            )
        keys[key] = tenant
    return keys


def environment() -> Mapping[str, str]:
    """The process environment, for `${VAR}` references in the tools file (MCP secrets)."""
    return os.environ


@lru_cache
def get_settings() -> Settings:
    return Settings()


class ClientSettings(BaseSettings):
    """Settings of the terminal client (`durable-agent`), which talks to the gateway over HTTP."""

    model_config = SettingsConfigDict(env_prefix="DURABLE_AGENT_", env_file=".env", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    api_key: str | None = Field(default=None, repr=False)
