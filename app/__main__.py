"""Run the gateway: `python -m app [--host H] [--port P]`.

The one way to start it (`make up`, the tests and the benchmarks all do): uvicorn with the
gateway's own HTTP protocol (`app.transport`), which puts deadlines on reading each request.
Host and port default to `DURABLE_AGENT_GATEWAY_HOST` / `DURABLE_AGENT_GATEWAY_PORT`; every
other setting comes from the environment as usual (`config.py`).
"""

from __future__ import annotations

import argparse

import uvicorn

from app.transport import read_deadline_protocol
from config import get_settings
from telemetry.logs import configure_logging
from telemetry.tracing import configure_tracing


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app", description="the durable-agent gateway")
    parser.add_argument("--host", default=settings.gateway_host)
    parser.add_argument("--port", type=int, default=settings.gateway_port)
    parser.add_argument("--log-level", default="info", help="uvicorn's log level")
    args = parser.parse_args(argv)
    configure_tracing(settings, "durable-agent-gateway")
    # JSON logs: uvicorn's own loggers go through the root handler (telemetry.logs) instead of
    # the plain-text handlers it would install.
    json_logs = settings.log_format == "json"
    if json_logs:
        configure_logging("json")
    config = uvicorn.Config(
        "app.main:app",
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
        http=read_deadline_protocol(settings.header_timeout_s, settings.body_timeout_s),
        # On SIGTERM, event streams end at once (sse-starlette watches uvicorn's exit flag) so
        # their clients reconnect to another gateway; plain requests get this long to finish.
        timeout_graceful_shutdown=int(settings.gateway_shutdown_grace_s),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
