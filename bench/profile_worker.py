"""Where durable-agent's worker spends its CPU under the 4-node graph load: py-spy samples the
worker process (`python worker.py`) while batches of 4-node graph runs (calculator, model,
calculator, model) go through it, then the samples are summed up by where they were.

    python -m bench.profile_worker [--seconds 30] [--rate 100] [--out profile.txt]
    make profile

Prints (and writes to `--out`, with the raw collapsed stacks beside it as `.folded`, the input
of flamegraph tools): the share of samples in each area (the workflow sandbox, the import
machinery it drives, the SDK's bridge to its Rust core, payload conversion, our workflow and
activity code), then the top functions by own time and by time including what they call.
Idle time (waiting on the event loop) is not sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import durable
from bench.harness import say
from bench.stack import bench_stack
from config import PROJECT_ROOT

CONCURRENCY = 50
# The one installed beside this interpreter (the bench extra), else the PATH's.
PY_SPY = str(Path(sys.executable).with_name("py-spy"))
if not Path(PY_SPY).exists():
    PY_SPY = shutil.which("py-spy") or "py-spy"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")

# Areas, looked for in every frame of a sample (a sample counts once in each area it went
# through, so the shares add up to more than 100 %).
AREAS: list[tuple[str, Callable[[list[str]], bool]]] = [
    (
        "workflow sandbox (temporalio/worker/workflow_sandbox)",
        lambda s: _has(s, "workflow_sandbox/"),
    ),
    ("import machinery (importlib)", lambda s: _has(s, "importlib")),
    (
        "module bodies of our packages run again on import (workflows/, shared.py...)",
        lambda s: _own_import(s),
    ),
    ("SDK bridge (temporalio/bridge)", lambda s: _has(s, "temporalio/bridge/")),
    ("payload conversion (temporalio/converter, pydantic)", lambda s: _has(s, "converter")),
    ("our workflow code (workflows/), not on import", lambda s: _ours(s, "/workflows/")),
    ("our activities (activities/), not on import", lambda s: _ours(s, "/activities/")),
]
# Leaf frames that are a thread waiting rather than working (py-spy's idle detection misses
# some): left out of the shares.
WAITING = ("EpollSelector.select", "_worker (", "wait (", "_wait_for_tstate_lock")


def _has(stack: list[str], needle: str) -> bool:
    return any(needle in frame for frame in stack)


def _project(frame: str) -> bool:
    match = FRAME.match(frame)
    path = match["file"] if match else ""
    # py-spy names files relative to the process's working directory (the project's) when it can.
    inside = path.startswith(str(PROJECT_ROOT)) or not path.startswith(("/", "<"))
    return inside and "site-packages" not in path


def _own_import(stack: list[str]) -> bool:
    """A module of this project whose body runs under an import (the sandbox re-imports the
    modules it does not pass through, for every new run)."""
    imported = False
    for frame in stack:
        imported = imported or "importlib" in frame
        if imported and frame.startswith("<module> (") and _project(frame):
            return True
    return False


def _ours(stack: list[str], folder: str) -> bool:
    relative = "(" + folder.lstrip("/")
    return not _own_import(stack) and any(
        (folder in f or relative in f) and _project(f) for f in stack
    )


def parse(folded: str) -> tuple[int, list[tuple[list[str], int]]]:
    samples: list[tuple[list[str], int]] = []
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples.append((stack.split(";"), int(count)))
        total += int(count)
    return total, samples


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "wt-bench/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def summarise(folded: str, top: int = 15) -> str:
    total, samples = parse(folded)
    waiting = sum(c for frames, c in samples if frames[-1].startswith(WAITING))
    samples = [(frames, c) for frames, c in samples if not frames[-1].startswith(WAITING)]
    total -= waiting
    if not total:
        return "no samples"
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in samples:
        for name, inside in AREAS:
            if inside(frames):
                areas[name] += count
        own[short(frames[-1])] += count
        for frame in {short(f) for f in frames}:
            inclusive[frame] += count
    lines = [
        f"{total} samples of the worker at work ({waiting} more of threads waiting, left out)",
        "",
        "by area (a sample counts in every area on its stack):",
    ]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in areas.most_common()]
    lines += ["", "top functions, own time:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    lines += ["", "top functions, including callees:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top * 2)]
    return "\n".join(lines)


async def load(stop: asyncio.Event, address: str, task_queue: str) -> int:
    client, settings = await durable.connect_ours(address, task_queue)
    spec = durable.spec_of(durable.four())
    done = 0
    while not stop.is_set():
        await durable.completed_batch(
            lambda: durable.start_graph(client, settings, spec), CONCURRENCY * 2, CONCURRENCY
        )
        done += CONCURRENCY * 2
    return done


async def main(seconds: int, rate: int, out: Path) -> None:
    with bench_stack(gateway=False) as stack:
        assert stack.worker is not None
        client, settings = await durable.connect_ours(stack.temporal_address, stack.task_queue)
        spec = durable.spec_of(durable.four())
        await durable.completed_batch(lambda: durable.start_graph(client, settings, spec), 20, 10)
        stop = asyncio.Event()
        loader = asyncio.create_task(load(stop, stack.temporal_address, stack.task_queue))
        folded = out.with_suffix(".folded")
        spy = await asyncio.create_subprocess_exec(
            PY_SPY,
            "record",
            "--pid",
            str(stack.worker.pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(folded),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await spy.communicate()
        stop.set()
        runs = await loader
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.decode(errors='replace')}")
        report(out, folded, f"py-spy on the worker for {seconds} s at {rate} Hz, {runs} runs")


def report(out: Path, folded: Path, header: str) -> None:
    text = f"{header}\n{summarise(folded.read_text())}\n"
    out.write_text(text)
    say(text)
    say(f"wrote {out} and {folded}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("profile-worker.txt"))
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rate, args.out))
