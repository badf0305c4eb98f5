"""Scale-out, proven: two workers and two gateways on one task queue against one dev server,
under load (200 agent runs, about two in five waiting for a person's answer), with one worker
and one gateway SIGKILLed mid-load and left dead. No load balancer: clients alternate between
the gateways and retry a dead one's requests on the other with the same Idempotency-Key.

Checked with Temporal itself: one completed execution per run id and no other execution on the
task queue (nothing lost, nothing started twice); each run's final state holds its answer,
taken once (`inputs_taken`). tests/chaos/scale.py is the driver; its figures are printed for
docs/deploy.md's sizing table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.chaos.scale import run_scale_out


async def test_two_workers_two_gateways_lose_and_repeat_nothing_when_one_of_each_dies(
    tmp_path: Path,
) -> None:
    report, cluster = await run_scale_out(
        tmp_path, runs=200, workers=2, gateways=2, kill_one_of_each=True
    )
    summary = report.summary()
    sys.stdout.write(f"\n{summary}\n")
    assert report.ok, f"{summary}\n{report.details()}"
    # The kills were real SIGKILLs, mid-load.
    assert report.killed == ["worker", "gateway"], summary
    assert report.in_flight_at_kill > 0, summary
    for proc in (cluster.workers[0], cluster.gateways[0]):
        assert proc is not None and proc.returncode == -9, summary
    # Clients met the dead gateway and carried on through the other.
    assert report.failovers.get("refused", 0) + report.failovers.get("cut off", 0) > 0, summary
