"""Event latency: time from a node's completion (its `at` stamp, the workflow task's time) to the
moment its event reaches an SSE client, versus a client polling GET /runs/{id} every 50 ms.

    python -m bench.event_latency [--runs 16]

Prints p50/p95 of both over all `node completed` events and the ratio SSE/polling (lower is
better). Each client watches its own runs, one after the other, on the same stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime

import httpx
from httpx_sse import aconnect_sse

from bench.stack import bench_stack

POLL_INTERVAL_S = 0.05


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _sse(http: httpx.AsyncClient, run_id: str, out: list[float]) -> None:
    async with aconnect_sse(http, "GET", f"/api/v1/runs/{run_id}/events") as source:
        async for sse in source.aiter_sse():
            now = time.time()
            event = json.loads(sse.data)
            if event["type"] == "node" and event["data"]["status"] == "completed":
                out.append(now - _at(event["at"]))
            if event["type"] == "result":
                return


async def _poll(http: httpx.AsyncClient, run_id: str, out: list[float]) -> None:
    seen: set[str] = set()
    while True:
        response = await http.get(f"/api/v1/runs/{run_id}")
        now = time.time()
        if response.status_code == 200:
            state = response.json()
            for node in state["nodes"]:
                if node["status"] == "completed" and node["id"] not in seen:
                    seen.add(node["id"])
                    out.append(now - _at(node["ended_at"]))
            if state["status"] in ("completed", "failed", "cancelled"):
                return
        await asyncio.sleep(POLL_INTERVAL_S)


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def measure(base_url: str, runs: int) -> tuple[list[float], list[float]]:
    """Each client alone, one after the other, so that neither slows the other down."""
    sse_lat: list[float] = []
    poll_lat: list[float] = []
    timeout = httpx.Timeout(60, read=None)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as http:
        for watch, out in ((_sse, sse_lat), (_poll, poll_lat)):
            for _ in range(runs):
                response = await http.post("/api/v1/runs", json={"query": "What is 17 * 23?"})
                await watch(http, response.json()["run_id"], out)
    return sse_lat, poll_lat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=16)  # 8 nodes a run -> 128 events
    args = parser.parse_args()
    with bench_stack() as stack:
        sse_lat, poll_lat = asyncio.run(measure(stack.base_url, args.runs))
    p50, p95 = _pct(sse_lat, 50), _pct(sse_lat, 95)
    b50, b95 = _pct(poll_lat, 50), _pct(poll_lat, 95)
    sys.stdout.write(
        f"event latency over {len(sse_lat)} node-completed events ({args.runs} runs)\n"
        f"  SSE stream         p50 {p50:6.1f} ms   p95 {p95:6.1f} ms\n"
        f"  polling (50 ms)    p50 {b50:6.1f} ms   p95 {b95:6.1f} ms   (baseline)\n"
        f"  ratio SSE/polling  p50 {p50 / b50:5.2f}x    p95 {p95 / b95:5.2f}x\n"
    )


if __name__ == "__main__":
    main()
