"""`make bench`: every side-by-side scenario, one after the other, then the table in
docs/performance.md and one chart per row in docs/performance/.

    python -m bench.all [--rounds N] [--scale 0.1] [--out docs/performance.md]
        [--charts docs/performance] [--report-only]

`--rounds` overrides each scenario's default rounds; `--scale` multiplies each one's runs (a
quick check of the harness itself). A scenario that fails is reported and the others still
run; the exit code is then 1. The measurements are kept in `<charts>/results.json`;
`--report-only` writes the note and charts again from them without measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from pathlib import Path

from bench import agent_cpu, gateway_latency, graph_throughput, harness, inputs_load, waiting_memory
from bench.harness import Row, Scenario
from config import PROJECT_ROOT

# (name, scenario, default rounds, default runs)
SCENARIOS: list[tuple[str, Scenario, int, int]] = [
    ("graph_throughput", graph_throughput.scenario, 3, 200),
    ("agent_cpu", agent_cpu.scenario, 3, 30),
    ("waiting_memory", waiting_memory.scenario, 3, 300),
    ("gateway_latency", gateway_latency.scenario, 3, 40),
    ("inputs_load", inputs_load.scenario, 2, 1000),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", default=None, help="scenario names")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "performance.md")
    parser.add_argument("--charts", type=Path, default=PROJECT_ROOT / "docs" / "performance")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    results = args.charts / "results.json"
    if args.report_only:
        kept, took_s = harness.load(results)
        harness.report(kept, took_s=took_s, out=args.out, charts=args.charts)
        return 0
    started = time.monotonic()
    rows: list[Row] = []
    failed: list[str] = []
    for name, scenario, rounds, runs in SCENARIOS:
        if args.only and name not in args.only:
            continue
        harness.say(f"## {name}")
        began = time.monotonic()
        try:
            rows += asyncio.run(scenario(args.rounds or rounds, max(2, round(runs * args.scale))))
        except Exception:  # noqa: BLE001 - say which, run the rest
            traceback.print_exc()
            failed.append(name)
        harness.say(f"## {name}: {time.monotonic() - began:.0f} s")
    took_s = time.monotonic() - started
    if args.only and results.exists():  # the other scenarios' rows as last measured
        kept, _ = harness.load(results)
        fresh = {row.key for row in rows}
        order = [row.key for row in kept]
        rows = [row for row in kept if row.key not in fresh] + rows
        rows.sort(key=lambda row: order.index(row.key) if row.key in order else len(order))
    harness.save(rows, results, took_s)
    harness.report(rows, took_s=took_s, out=args.out, charts=args.charts)
    if failed:
        harness.say(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
