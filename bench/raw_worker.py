"""A plain Temporal SDK worker for the baselines (`bench/raw_workflows.py`): default options,
default data converter, nothing of durable-agent's plugin.

    python -m bench.raw_worker --address 127.0.0.1:7233 --task-queue raw
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from bench.raw_activities import raw_calc, raw_llm
from bench.raw_workflows import RawChain, RawFour, RawSteps, RawWaiter, raw_noop


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RawChain, RawFour, RawSteps, RawWaiter],
        activities=[raw_calc, raw_llm, raw_noop],
    ):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.address, args.task_queue))
