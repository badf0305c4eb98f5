"""Time to first token: at the model server versus at an SSE client of the gateway.

    python -m bench.ttft [--runs 10]

The OpenAI-wire test double (tests/fake_openai.py) streams the final answer after a 500 ms
"thinking" delay; the worker's activity publishes tokens to the run's event stream in 100 ms
batches; the client reads `/events`. Both times run from the moment the streaming request reached
the model server; the ratio is client / server (1.0 would be free).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from bench.stack import bench_stack
from config import PROJECT_ROOT
from devstack.processes import free_port, port_open, start, stop, wait_until

KEY = "sk-bench"
THINK_S = 0.5


async def one_run(base: str, fake: str) -> tuple[float, float]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=None)) as http:
        await http.post(f"{fake}/_reset")
        await http.post(
            f"{fake}/_script",
            json={"step": [{"chunks": [f"t{i} " for i in range(20)], "delay": THINK_S}]},
        )
        run_id = (await http.post(f"{base}/api/v1/runs", json={"query": "Tell me"})).json()[
            "run_id"
        ]
        first_token_at = None
        async with aconnect_sse(http, "GET", f"{base}/api/v1/runs/{run_id}/events") as source:
            async for sse in source.aiter_sse():
                event = json.loads(sse.data)
                if event["type"] == "token" and first_token_at is None:
                    first_token_at = time.time()
                if event["type"] == "result":
                    break
        step = next(
            r
            for r in (await http.get(f"{fake}/_requests")).json()
            if r["stage"] == "step" and r["body"].get("stream")
        )
    assert first_token_at is not None
    return step["first_chunk_at"] - step["at"], first_token_at - step["at"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        fake = start(
            [sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--api-key", KEY],
            log=Path(tmp) / "fake.log",
            cwd=PROJECT_ROOT,
        )
        try:
            wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="fake openai")
            fake_url = f"http://127.0.0.1:{port}"
            env = {
                "DURABLE_AGENT_LLM": "openai",
                "DURABLE_AGENT_OPENAI_API_KEY": KEY,
                "DURABLE_AGENT_OPENAI_BASE_URL": f"{fake_url}/v1",
            }
            with bench_stack(env) as stack:
                pairs = [asyncio.run(one_run(stack.base_url, fake_url)) for _ in range(args.runs)]
        finally:
            stop(fake)
    server = statistics.median(p[0] for p in pairs) * 1000
    client = statistics.median(p[1] for p in pairs) * 1000
    sys.stdout.write(
        f"time to first token over {args.runs} runs (median)\n"
        f"  at the model server   {server:7.1f} ms   (baseline)\n"
        f"  at the SSE client     {client:7.1f} ms\n"
        f"  ratio client/server   {client / server:7.2f}x   (+{client - server:.0f} ms)\n"
    )


if __name__ == "__main__":
    main()
