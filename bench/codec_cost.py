"""What encrypting payloads costs per run: the same runs with the codec on and off, measured in
the same run of this script against one dev server.

    python -m bench.codec_cost [--rounds 6] [--batch 20]

Two worker + gateway pairs on one dev server, one with `DURABLE_AGENT_PAYLOAD_KEYS`, one
without, on task queues of their own. Each round starts a batch of calculator runs (intent,
context with a tool call, plan, steps) through one pair's gateway and waits until all are
completed, alternating pairs so that drift hits both alike. Prints the median seconds per
batch for each, their ratio (on/off), and the codec's own CPU per run (encrypting then
decrypting every payload of one run's history, measured in this process).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from temporalio.api.common.v1 import Payload

from codec import AesGcmCodec, payload_codec
from config import PROJECT_ROOT, Settings
from devstack.processes import dev_server_command, free_port, port_open, start, stop, wait_until
from temporal_client import connect

QUERY = "What is 17 * 23?"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _batch(base: str, size: int) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        responses = await asyncio.gather(
            *(http.post("/api/v1/runs", json={"query": QUERY}) for _ in range(size))
        )
        run_ids = [r.json()["run_id"] for r in responses]
        pending = set(run_ids)
        while pending:
            states = await asyncio.gather(*(http.get(f"/api/v1/runs/{r}") for r in pending))
            pending = {
                r for r, s in zip(pending, states, strict=True) if s.json()["status"] != "completed"
            }
            if pending:
                await asyncio.sleep(0.05)
    return time.perf_counter() - started


def _payloads(node: object, found: list[Payload]) -> None:
    """Every Payload message inside a history event."""
    if isinstance(node, Payload):
        found.append(node)
        return
    fields = getattr(node, "ListFields", None)
    if fields is None:
        return
    for _, value in fields():
        if hasattr(value, "ListFields"):
            _payloads(value, found)
        elif not isinstance(value, str | bytes | int | float):
            # A repeated field or a map of messages.
            for item in value.values() if hasattr(value, "values") else value:
                _payloads(item, found)


async def _codec_cpu_ms(address: str, run_id: str, codec: AesGcmCodec) -> tuple[float, int, int]:
    """CPU ms to encrypt and decrypt every payload of one run (as stored: decrypted first)."""
    client = await connect(Settings(temporal_address=address))
    history = await client.get_workflow_handle(run_id).fetch_history()
    sealed: list[Payload] = []
    for event in history.events:
        _payloads(event, sealed)
    plain = await codec.decode(sealed)
    size = sum(p.ByteSize() for p in plain)
    started = time.process_time()
    repeats = 50
    for _ in range(repeats):
        await codec.decode(await codec.encode(plain))
    return (time.process_time() - started) * 1000 / repeats, len(plain), size


async def main(rounds: int, batch: int) -> None:
    key = "bench:" + base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        server = start(
            dev_server_command(folder / "t.db", "127.0.0.1", port, None), log=folder / "t.log"
        )
        procs = [server]
        try:
            wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="server")
            bases: dict[str, str] = {}
            for mode in ("off", "on"):
                env = {
                    "DURABLE_AGENT_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
                    "DURABLE_AGENT_TASK_QUEUE": f"bench-{mode}-{uuid.uuid4().hex}",
                    "DURABLE_AGENT_DATA_DIR": str(folder / mode),
                    "DURABLE_AGENT_NOTES_FILE": str(folder / mode / "notes.txt"),
                }
                if mode == "on":
                    env["DURABLE_AGENT_PAYLOAD_KEYS"] = key
                log = folder / f"{mode}.log"
                procs.append(
                    start([sys.executable, "worker.py"], env=env, log=log, cwd=PROJECT_ROOT)
                )
                http_port = free_port()
                gateway_cmd = [sys.executable, "-m", "app", "--port", str(http_port)]
                procs.append(
                    start(
                        [*gateway_cmd, "--log-level", "warning"], env=env, log=log, cwd=PROJECT_ROOT
                    )
                )
                bases[mode] = f"http://127.0.0.1:{http_port}"
                wait_until(lambda b=bases[mode]: _healthy(b + "/healthz"), timeout=60, what=mode)
            await _batch(bases["off"], 4)  # warm both up
            await _batch(bases["on"], 4)
            times: dict[str, list[float]] = {"off": [], "on": []}
            for index in range(rounds):
                order = ("off", "on") if index % 2 == 0 else ("on", "off")
                for mode in order:
                    times[mode].append(await _batch(bases[mode], batch))
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            say(f"{rounds} rounds of {batch} calculator runs per mode, interleaved")
            say(f"codec off: median {off:.2f} s per batch ({off / batch * 1000:.0f} ms/run)")
            say(f"codec on:  median {on:.2f} s per batch ({on / batch * 1000:.0f} ms/run)")
            say(f"ratio on/off: {on / off:.3f}")

            async with httpx.AsyncClient(base_url=bases["on"], timeout=60) as http:
                run_id = (await http.post("/api/v1/runs", json={"query": QUERY})).json()["run_id"]
                for _ in range(600):
                    state = (await http.get(f"/api/v1/runs/{run_id}")).json()
                    if state["status"] == "completed":
                        break
                    await asyncio.sleep(0.05)
            codec = payload_codec(key)
            assert codec is not None
            ms, count, size = await _codec_cpu_ms(f"127.0.0.1:{port}", run_id, codec)
            say(
                f"codec CPU per run: {ms:.2f} ms to encrypt + decrypt its {count} payloads "
                f"({size / 1024:.0f} KiB)"
            )
        finally:
            for proc in reversed(procs):
                stop(proc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.batch))
