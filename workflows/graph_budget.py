"""What a graph run's expressions may read, and when in-workflow work hands the activation back.

The CEL engine converts each value an expression reads (and a result holds a copy per use), so
the cost of an expression is the weight of the variables it names (`limits.read_weight`), once
per use; `matches()` counts MATCHES_COST_FACTOR times (a regular expression walks its text ~16x
slower than the engine converts it). Workflow code, but no Temporal command of its own except
the hand-back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from temporalio import workflow

from workflows.limits import (
    IN_WORKFLOW_READ_BYTES_PER_ACTIVATION,
    IN_WORKFLOW_STEPS_PER_ACTIVATION,
    MATCHES_COST_FACTOR,
    MATCHES_READ_BYTES,
    Limits,
    read_weight,
    referenced_names,
)
from workflows.patches import YIELD_BETWEEN_INLINE_NODES, patched


class ReadBudget:
    def __init__(self, limits: Limits, on_hand_back: Callable[[], None], baseline: int = 0) -> None:
        self._limits = limits
        self._baseline = baseline
        self._on_hand_back = on_hand_back
        # What reading each value costs, by name: `input`, node ids, `vars`.
        self.weights: dict[str, int] = {}
        # In-workflow nodes run in this activation, and the bytes of variables they read.
        self.steps = 0
        self._read = 0
        self._since = 0  # history length when the count began
        self._yielding: asyncio.Task[None] | None = None

    def weigh(self, variables: dict[str, Any]) -> dict[str, int]:
        """Weigh every variable; the JSON size of each output (all but `input`)."""
        sizes = {}
        for name, value in variables.items():
            size, self.weights[name] = read_weight(value)
            if name != "input":
                sizes[name] = size
        return sizes

    def cost(self, sources: Iterable[str]) -> int:
        total = 0
        for source in sources:
            read = sum(self.weights.get(name, 0) for name in referenced_names(source))
            total += read * (MATCHES_COST_FACTOR if "matches" in source else 1)
        return total

    def problem(self, sources: list[str], cost: int) -> str | None:
        """Why these expressions may not be evaluated (they would read too much), or None."""
        for source in sources:
            if "matches" in source and self.cost([source]) > MATCHES_READ_BYTES:
                return (
                    f"an expression that calls matches() may read "
                    f"{MATCHES_READ_BYTES // MATCHES_COST_FACTOR} bytes of variables at most"
                )
        if cost > self._limits.max_node_read_bytes:
            return (
                f"its expressions would read {cost} bytes of variables; the limit is "
                f"{self._limits.max_node_read_bytes}"
            )
        return None

    async def turn(self, cost: int, steps: int = 1) -> None:
        """Wait until this in-workflow work may run in the current activation: after 20 nodes,
        or 1 MiB of variables read, the activation is handed back to Temporal (a no-op local
        activity: no server round trip, unlike a timer, which the dev server fires ~1 s later),
        so the deadlock detector never fires. Parallel nodes share one hand-back."""
        while True:
            length = workflow.info().get_current_history_length()
            if length != self._since:  # a new workflow task: the count starts again
                self._since, self.steps, self._read = length, 0, 0
            fits = (
                self.steps < IN_WORKFLOW_STEPS_PER_ACTIVATION
                and self._read + cost <= IN_WORKFLOW_READ_BYTES_PER_ACTIVATION
            )
            first = self.steps == 0 and self._read == 0
            if fits or first or not patched(YIELD_BETWEEN_INLINE_NODES, self._baseline):
                self.steps += steps
                self._read += cost
                return
            if self._yielding is None:
                self._yielding = asyncio.create_task(self._hand_back())
            await self._yielding

    async def _hand_back(self) -> None:
        await workflow.execute_local_activity(
            "graph_yield", start_to_close_timeout=timedelta(seconds=10)
        )
        self.steps, self._read, self._yielding = 0, 0, None
        self._on_hand_back()
