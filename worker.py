"""The worker: runs the workflows and activities of durable-agent on one task queue.

    python worker.py          # settings from DURABLE_AGENT_* env vars (see config.py)

Scale out by starting more of these on the same task queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.llm import LLMProvider, OfflineProvider
from activities.tools.registry import ToolRegistry, default_registry
from config import Settings, get_settings
from plugin import DurableAgentPlugin
from temporal_client import connect, ensure_search_attributes

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
        )
    raise SystemExit(
        f"DURABLE_AGENT_LLM={settings.llm!r} is not a known provider; choose offline or openai"
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
        tools or default_registry(settings.knowledge_dir, settings.notes_file),
        workflows=workflows,
    )
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        plugins=[plugin],
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_activities=settings.max_concurrent_activities,
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.sticky_schedule_to_start_s
        ),
    )


async def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await _connect_when_reachable(settings, stop)
    if client is None:
        return
    await ensure_search_attributes(client, settings.namespace)
    worker = build_worker(client, settings)
    logger.info(
        "worker polling task queue %r on %s (namespace %s, llm %s)",
        settings.task_queue,
        settings.temporal_address,
        settings.namespace,
        settings.llm,
    )
    async with worker:
        await stop.wait()
        logger.info("worker shutting down")


async def _connect_when_reachable(settings: Settings, stop: asyncio.Event) -> Client | None:
    """Connect, waiting out an unreachable Temporal (a restart, a deploy) instead of exiting."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await connect(settings)
        except RuntimeError as exc:
            logger.warning(
                "Temporal at %s is not reachable (%s); retrying in %.1fs",
                settings.temporal_address,
                str(exc).splitlines()[0],
                delay,
            )
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 10)
    return None


if __name__ == "__main__":
    asyncio.run(main())
