"""The pipeline on a real model server: time per stage, tokens/s, and time to first token at
the SSE client versus at the model server.

    python -m bench.real_model [--runs 5]

llama.cpp's server (`xllamacpp`, one thread) with SmolLM2-135M, behind a recording proxy (in
this process) that notes when each request arrived, when its first content token left the
server, and the server's own timings; a worker and a gateway on a throwaway dev server, with
the real-model tests' settings (temperature 0, answers bounded to 320 tokens). Each run is the
four-stage agent of tests/e2e/test_real_model.py (no small talk, no tools, one reflection),
read over SSE. Prints medians:

- seconds per stage (intent; context; execute = plan + steps; reflect), from the run's nodes;
- generation tokens/s (the server's `predicted_per_second`) and end-to-end output tokens per
  second of model time (the run's tokens_out over the summed time of its model nodes);
- time to first token of the streamed answer, both from the moment the streaming request
  reached the model server: at the server (first content chunk out) and at the SSE client
  (first `token` event in); the ratio is client / server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from httpx_sse import aconnect_sse

from bench.stack import bench_stack
from config import PROJECT_ROOT
from devstack.processes import free_port, start, stop, wait_until
from tests.e2e.test_real_model import FOUR_STAGES, MAX_TOKENS
from tests.real_model.llama_server import MODEL_ALIAS

QUERIES = [
    "Explain what a durable workflow is.",
    "Why would a run wait for a person?",
    "Describe what a worker does.",
    "What happens when a worker crashes?",
    "How are tokens streamed to a client?",
]
STAGES = {"intent": "intent", "context": "context", "plan": "execute", "step": "execute"}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def recording_proxy(upstream: str, records: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(120, read=None))

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        record: dict[str, Any] = {"at": time.time(), "stream": bool(body.get("stream"))}
        records.append(record)
        if not record["stream"]:
            response = await client.post("/v1/chat/completions", json=body)
            data = response.json()
            record["timings"] = data.get("timings")
            return JSONResponse(data, status_code=response.status_code)

        async def relay() -> AsyncIterator[bytes]:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        if "timings" in chunk:
                            record["timings"] = chunk["timings"]
                        deltas = [c.get("delta", {}).get("content") for c in chunk["choices"]]
                        if any(deltas) and "first_token_at" not in record:
                            record["first_token_at"] = time.time()
                    yield (line + "\n").encode()

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app


def serve_in_thread(app: FastAPI, port: int) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    return server


async def one_run(base: str, query: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(120, read=None)) as http:
        created = await http.post("/api/v1/runs", json={"agent": FOUR_STAGES, "query": query})
        run_id = created.json()["run_id"]
        first_token_at = None
        async with aconnect_sse(http, "GET", f"/api/v1/runs/{run_id}/events") as source:
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue
                event = json.loads(sse.data)
                if event["type"] == "token" and first_token_at is None:
                    first_token_at = time.time()
                if event["type"] == "result":
                    break
        run: dict[str, Any] = (await http.get(f"/api/v1/runs/{run_id}")).json()
    streamed = [r for r in records if r["stream"]][-1]
    run["_ttft_server"] = streamed["first_token_at"] - streamed["at"]
    run["_ttft_client"] = (first_token_at or float("nan")) - streamed["at"]
    return run


def _seconds(node: dict[str, Any]) -> float:
    started = datetime.fromisoformat(node["started_at"])
    ended = datetime.fromisoformat(node["ended_at"])
    return (ended - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    records: list[dict[str, Any]] = []
    llama_port, proxy_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        llama = start(
            [sys.executable, "-m", "tests.real_model.llama_server", "--port", str(llama_port)],
            log=Path(tmp) / "llama.log",
            cwd=PROJECT_ROOT,
        )
        proxy = serve_in_thread(
            recording_proxy(f"http://127.0.0.1:{llama_port}", records), proxy_port
        )
        try:

            def serving() -> bool:
                try:
                    url = f"http://127.0.0.1:{llama_port}/v1/models"
                    return httpx.get(url, timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(serving, timeout=60, what="llama.cpp server", proc=llama)
            env = {
                "DURABLE_AGENT_LLM": "openai",
                "DURABLE_AGENT_OPENAI_BASE_URL": f"http://127.0.0.1:{proxy_port}/v1",
                "DURABLE_AGENT_MODEL": MODEL_ALIAS,
                "DURABLE_AGENT_MAX_TOKENS": str(MAX_TOKENS),
                "DURABLE_AGENT_TEMPERATURE": "0",
            }
            with bench_stack(env) as stack:
                runs = []
                for i in range(args.runs):
                    run = asyncio.run(one_run(stack.base_url, QUERIES[i % len(QUERIES)], records))
                    assert run["status"] == "completed", run["errors"]
                    runs.append(run)
        finally:
            proxy.should_exit = True
            stop(llama)
    report(runs, records)


def report(runs: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    per_stage: dict[str, list[float]] = {"intent": [], "context": [], "execute": [], "reflect": []}
    end_to_end = []
    for run in runs:
        totals: dict[str, float] = {}
        for node in run["nodes"]:
            stage = STAGES.get(node["name"].split("-")[0], node["name"])
            if stage in per_stage:
                totals[stage] = totals.get(stage, 0.0) + _seconds(node)
        for stage, seconds in totals.items():
            per_stage[stage].append(seconds)
        model_time = sum(totals.values())
        end_to_end.append(run["usage"]["tokens_out"] / model_time)
    generation = [r["timings"]["predicted_per_second"] for r in records if r.get("timings")]
    server = statistics.median(r["_ttft_server"] for r in runs) * 1000
    client = statistics.median(r["_ttft_client"] for r in runs) * 1000
    say(f"SmolLM2-135M on llama.cpp (1 thread), {len(runs)} four-stage runs, medians")
    for stage, values in per_stage.items():
        say(f"  {stage:<8} {statistics.median(values):6.2f} s per run")
    say(f"  generation       {statistics.median(generation):7.1f} tokens/s (server timings)")
    say(f"  end to end       {statistics.median(end_to_end):7.1f} output tokens/s of model time")
    say("  time to first token of the streamed answer, from the request at the server:")
    say(f"    at the model server  {server:7.1f} ms")
    say(f"    at the SSE client    {client:7.1f} ms")
    say(f"    ratio client/server  {client / server:7.2f}x  (+{client - server:.0f} ms)")


if __name__ == "__main__":
    main()
