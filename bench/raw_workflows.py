"""Baselines written against Temporal alone: what a hand-written workflow doing the same work
costs, to compare the graph engine with in the same run.

Activities are named by string here and defined in `bench/raw_activities.py`, as a Temporal user
would lay them out, so that the workflow sandbox imports nothing but this module.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=30)


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


@workflow.defn(name="RawFour")
class RawFour:
    """The 4-node graph of `bench/graph_throughput.py` by hand: calculator, model, calculator,
    model, each an activity, each model prompt quoting the calculator's result."""

    @workflow.run
    async def run(self, expression: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in (1, 2):
            value = await workflow.execute_activity(
                "raw_calc", expression, start_to_close_timeout=TIMEOUT, result_type=str
            )
            out[f"calc{i}"] = value
            out[f"say{i}"] = await workflow.execute_activity(
                "raw_llm", f"Say {value}", start_to_close_timeout=TIMEOUT, result_type=str
            )
        return out


@workflow.defn(name="RawSteps")
class RawSteps:
    """`n` calculator activities one after the other (an agent run's number of activities)."""

    @workflow.run
    async def run(self, n: int) -> list[str]:
        return [
            await workflow.execute_activity(
                "raw_calc", f"{i} * 23", start_to_close_timeout=TIMEOUT, result_type=str
            )
            for i in range(n)
        ]


@workflow.defn(name="RawWaiter")
class RawWaiter:
    """Blocked until a signal brings an answer (a run waiting for input, by hand)."""

    def __init__(self) -> None:
        self.answer: str | None = None

    @workflow.run
    async def run(self, question: str) -> str:
        await workflow.wait_condition(lambda: self.answer is not None)
        return f"{question} {self.answer}"

    @workflow.signal
    def answer_with(self, text: str) -> None:
        self.answer = text

    @workflow.query
    def get_state(self) -> dict[str, Any]:
        return {"status": "waiting_for_input" if self.answer is None else "running"}
