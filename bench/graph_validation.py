"""Validation + preparation time of graphs of 10 to 5,000 nodes (the ceiling of the limits).

    python -m bench.graph_validation

"Validation + preparation" is `workflows.graph_spec.validate`, which parses the spec, checks
every rule, compiles every CEL expression and builds the interpreter's plan. Baseline, measured
in the same run on the same specs: parsing the spec into the pydantic model alone (the least any
validation must do). Targets: reference 004 asks < 500 ms; we aim for < 50 ms at 1,000 nodes.
The compile cache is cleared before every measurement: a gateway sees new graphs.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from workflows.graph_spec import GraphSpec, compiled, validate
from workflows.limits import Limits, ceiling

SIZES = (10, 100, 1_000, 5_000)
# The largest graphs the limits may be raised to allow.
LIMITS = Limits(
    max_graph_nodes=ceiling("max_graph_nodes"),
    max_graph_edges=ceiling("max_graph_edges"),
    max_graph_bytes=ceiling("max_graph_bytes"),
)
TOOLS = ["calculator", "search_docs"]


def make_graph(size: int) -> dict[str, Any]:
    """A chain with a side branch every 10 nodes; every node has an expression to compile."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for i in range(size):
        if i % 10 == 5:
            nodes.append(
                {
                    "id": f"n{i}",
                    "type": "tool",
                    "config": {
                        "tool": "calculator",
                        "args": {"expression": f'string({i}) + " * 2"'},
                    },
                }
            )
        elif i % 10 == 7:
            nodes.append(
                {
                    "id": f"n{i}",
                    "type": "llm",
                    "config": {
                        "prompt": f"Summarise {{{{ n{i - 1}.value }}}} for {{{{ input.who }}}}"
                    },
                }
            )
        else:
            nodes.append(
                {
                    "id": f"n{i}",
                    "type": "transform",
                    "config": {"set": {f"v{i}": f"{i} + size(input.items)"}},
                }
            )
        if i > 0:
            edges.append(
                {
                    "source": f"n{i - 1}",
                    "target": f"n{i}",
                    "when": f"n{i - 1}.metadata.status == 'completed'",
                }
            )
    return {"name": f"bench_{size}", "entry": "n0", "nodes": nodes, "edges": edges}


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    sys.stdout.write(f"{'nodes':>7} {'validate+prepare':>17} {'parse only':>11} {'ratio':>7}\n")
    for size in SIZES:
        spec = make_graph(size)
        checked = validate(spec, TOOLS, LIMITS)
        assert checked.ok, checked.problems[:3]
        repeat = 20 if size <= 1000 else 5

        def full_validation(spec: dict[str, Any] = spec) -> object:
            compiled.cache_clear()
            return validate(spec, TOOLS, LIMITS)

        full = _median_ms(full_validation, repeat)
        parse = _median_ms(lambda spec=spec: GraphSpec.model_validate(spec), repeat)  # type: ignore[misc]
        sys.stdout.write(f"{size:>7} {full:>14.1f} ms {parse:>8.1f} ms {full / parse:>6.1f}x\n")


if __name__ == "__main__":
    main()
