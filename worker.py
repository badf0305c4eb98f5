"""The worker: runs the workflows and activities of durable-agent on one task queue.

    python worker.py          # settings from DURABLE_AGENT_* env vars (see config.py)

Scale out by starting more of these on the same task queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.llm import LLMProvider, OfflineProvider
from activities.tools.registry import ToolRegistry
from activities.tools.sources import ToolConfigError, build_registry
from config import Settings, environment, get_settings
from plugin import DurableAgentPlugin
from telemetry.logs import configure_logging
from telemetry.metrics import ActivityMetrics, prometheus_runtime
from telemetry.tracing import configure_tracing
from temporal_client import certificate_refused, connect, ensure_search_attributes, tls_problem

logger = logging.getLogger("durable_agent.worker")


def build_provider(settings: Settings) -> LLMProvider:
    if settings.llm == "offline":
        return OfflineProvider()
    if settings.llm == "openai":
        from activities.openai_provider import OpenAIProvider

        return OpenAIProvider(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=settings.model,
            timeout_s=settings.openai_timeout_s,
            json_retries=settings.llm_json_retries,
            prices=settings.prices,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
        )
    raise SystemExit(
        f"DURABLE_AGENT_LLM={settings.llm!r} is not a known provider; choose offline or openai"
    )


def build_tools(settings: Settings) -> ToolRegistry:
    """Every tool source of the operator's configuration (a ToolConfigError names a bad one)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return build_registry(
        knowledge_dir=settings.knowledge_dir,
        notes_file=settings.notes_file,
        tools_file=settings.tools_file,
        environ=environment(),
        use_entry_points=settings.tool_entry_points,
        errlog_dir=settings.data_dir,
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    provider: LLMProvider | None = None,
    tools: ToolRegistry | None = None,
    task_queue: str | None = None,
    workflows: list[type] | None = None,
) -> Worker:
    plugin = DurableAgentPlugin(
        provider or build_provider(settings),
        tools or build_tools(settings),
        workflows=workflows,
        list_timeout_s=settings.mcp_list_timeout_s,
    )
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        plugins=[plugin],
        interceptors=[ActivityMetrics()],
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_activities=settings.max_concurrent_activities,
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.sticky_schedule_to_start_s
        ),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_s),
    )


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format)
    tracer_provider = configure_tracing(settings, "durable-agent-worker")
    try:
        tools = build_tools(settings)
    except ToolConfigError as exc:
        # Never a half-loaded registry: the worker does not start, and says which entry.
        raise SystemExit(f"worker not started: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime = None
    if settings.worker_metrics_port is not None:
        runtime = prometheus_runtime(settings.worker_metrics_host, settings.worker_metrics_port)
        logger.info(
            "worker metrics on http://%s:%d/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
    client = await _connect_when_reachable(settings, stop, runtime)
    if client is None:
        return
    await ensure_search_attributes(client, settings.namespace)
    worker = build_worker(client, settings, tools=tools)
    logger.info(
        "worker polling task queue %r on %s (namespace %s, llm %s)",
        settings.task_queue,
        settings.temporal_address,
        settings.namespace,
        settings.llm,
    )
    try:
        async with worker:
            await stop.wait()
            logger.info(
                "worker shutting down: no new tasks; running activities get %.0fs to finish",
                settings.worker_shutdown_grace_s,
            )
    finally:
        await tools.aclose()  # stops the stdio MCP servers it started
        if tracer_provider is not None:
            tracer_provider.shutdown()  # exports the spans still batched


async def _connect_when_reachable(
    settings: Settings, stop: asyncio.Event, runtime: Runtime | None = None
) -> Client | None:
    """Connect, waiting out an unreachable Temporal (a restart, a deploy) instead of exiting."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await connect(settings, runtime=runtime)
        except RuntimeError as exc:
            problem = tls_problem(settings, exc)
            if certificate_refused(exc):
                # A configuration error: waiting would only hide it.
                raise SystemExit(f"worker not started: {problem}") from None
            logger.warning(
                "Temporal at %s is not reachable (%s); retrying in %.1fs",
                settings.temporal_address,
                problem or str(exc).splitlines()[0],
                delay,
            )
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 10)
    return None


def _exit_without_finalizing() -> None:
    """End the process once the worker has shut down, skipping interpreter finalization.

    The SDK's native (Rust) threads can still call into Python after `asyncio.run` returns; one
    that does so while the interpreter finalizes aborts the process with "Fatal Python error:
    PyGILState_Release ... finalizing" (sdk-python issue 300; here 2 in 20 stops). Everything
    worth doing at exit is done by then: flush the logs and leave.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
    _exit_without_finalizing()
