"""Baselines written against Temporal alone: what a hand-written workflow doing the same work
costs, to compare the graph engine with in the same run."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="raw_noop")
async def raw_noop(i: int) -> int:
    return i


@workflow.defn(name="RawChain")
class RawChain:
    """`n` activities one after the other (the shape of a chain of tool nodes)."""

    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_activity(
                raw_noop, i, start_to_close_timeout=timedelta(seconds=30)
            )
        return total
