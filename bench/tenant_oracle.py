"""Is a run id a tenant oracle? Time the two 404s another tenant can get: for a run that exists
but belongs to someone else, and for an id that does not exist.

    python -m bench.tenant_oracle [--rounds 200]

With API keys on, tenant `acme` starts runs (one with `Idempotency-Key: order-42`, the id an
attacker would try to compute); tenant `globex` then asks for acme's runs and for unknown ids,
interleaved, with the worker running and again with it stopped. Prints the median of each and
the ratio foreign/unknown (1.0 = indistinguishable).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid

import httpx

from bench.stack import bench_stack
from devstack.processes import stop

KEYS = "acme-key:acme,globex-key:globex"
ACME = {"Authorization": "Bearer acme-key"}
GLOBEX = {"Authorization": "Bearer globex-key"}


async def _acme_runs(http: httpx.AsyncClient, count: int) -> list[str]:
    runs = []
    for index in range(count):
        key = {"Idempotency-Key": "order-42" if index == 0 else f"order-{uuid.uuid4()}"}
        query = "Plan my trip to Lisbon" if index % 2 else "What is 17 * 23?"
        response = await http.post("/api/v1/runs", json={"query": query}, headers={**ACME, **key})
        response.raise_for_status()
        runs.append(response.json()["run_id"])
    return runs


async def _time(http: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    response = await http.get(path, headers=GLOBEX)
    elapsed = time.perf_counter() - started
    if response.status_code != 404:
        raise SystemExit(f"expected 404 for {path}, got {response.status_code}: {response.text}")
    return elapsed


async def _measure(http: httpx.AsyncClient, runs: list[str], rounds: int) -> tuple[float, float]:
    foreign: list[float] = []
    unknown: list[float] = []
    for index in range(rounds):
        run_id = runs[index % len(runs)]
        missing = f"run-{uuid.uuid4().hex}"
        pair = [("f", f"/api/v1/runs/{run_id}"), ("u", f"/api/v1/runs/{missing}")]
        if index % 2:
            pair.reverse()  # interleaved, each first half of the time
        for which, path in pair:
            (foreign if which == "f" else unknown).append(await _time(http, path))
    return statistics.median(foreign), statistics.median(unknown)


def _report(label: str, foreign: float, unknown: float) -> None:
    sys.stdout.write(
        f"{label:<16} foreign run 404: {foreign * 1000:7.2f} ms   unknown id 404: "
        f"{unknown * 1000:7.2f} ms   ratio foreign/unknown: {foreign / unknown:5.2f}\n"
    )


async def main(rounds: int) -> None:
    with bench_stack({"DURABLE_AGENT_API_KEYS": KEYS}) as stack:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            runs = await _acme_runs(http, 10)
            await _measure(http, runs, 20)  # warm-up
            sys.stdout.write(
                f"median of {rounds} interleaved pairs, GET /api/v1/runs/{{id}} as another tenant\n"
            )
            _report("worker running", *await _measure(http, runs, rounds))
            assert stack.worker is not None
            stop(stack.worker)
            _report("worker stopped", *await _measure(http, runs, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
    sys.stdout.flush()
