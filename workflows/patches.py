"""Every `workflow.patched()` id of our workflows, and the baseline that implies them.

A patch marks a change to the commands a run issues: runs recorded before it replay as they ran
(docs/versioning.md). `workflow.patched()` in a new run records a marker and upserts Temporal's
`TemporalChangeVersion` search attribute: two history events and one visibility write per patch
per run, paid by every run although only old runs need the check.

So a run's input carries a `baseline`: the starter (the gateway, a graph starting an agent
node's child) says which code started it. A run at baseline N takes every patch of
`BASELINES[N]` as applied, with no marker; the choice comes from the run's input, so its replay
makes it again. Runs from before (`baseline` 0) call `workflow.patched()` as they always did.
A patch added later is checked with `workflow.patched()` by every run until a new baseline
(the next `BASELINE_<n>`, with the gateway starting runs at n) takes it in.
"""

from __future__ import annotations

from temporalio import workflow

# Agent runs.
SKIP_CALCULATION_REFLECTION = "skip-calculation-reflection"
# The worker checks a new run's query (runs started before replay without the check).
CHECK_QUERY = "check-query-in-worker"
# The run lists its tools once (an activity whose result it records) and holds calls of tools
# whose policy is `approval: always` for a person's decision.
RECORD_TOOL_CATALOG = "record-tool-catalog"
# A run never completes without an answer: a simple-chat reply that is blank falls through to
# the pipeline, and a run whose final answer is blank fails with why.
REFUSE_EMPTY_ANSWER = "refuse-empty-answer"

# Graph runs.
BOUND_PARALLEL_NODES = "bound-parallel-nodes"
ENFORCE_LIMITS = "enforce-limits-in-worker"  # input, expressions and outputs checked here too
GRAPH_ENGINE_V2 = "graph-engine-v2"  # status from nodes; several questions at once
CONTINUE_AS_NEW = "graph-continue-as-new"
YIELD_BETWEEN_INLINE_NODES = "yield-between-inline-nodes"
GRAPH_TOOL_APPROVALS = "graph-tool-approvals"  # tool nodes honour the tools' approval policies

# Both: the run lists its tools with a local activity (no task-queue round trip; a listing cut
# short by a crash is simply listed again).
LOCAL_TOOL_LISTING = "local-tool-listing"

BASELINE_1 = frozenset(
    {
        SKIP_CALCULATION_REFLECTION,
        CHECK_QUERY,
        RECORD_TOOL_CATALOG,
        REFUSE_EMPTY_ANSWER,
        BOUND_PARALLEL_NODES,
        ENFORCE_LIMITS,
        GRAPH_ENGINE_V2,
        CONTINUE_AS_NEW,
        YIELD_BETWEEN_INLINE_NODES,
        GRAPH_TOOL_APPROVALS,
    }
)
BASELINE_2 = BASELINE_1 | {LOCAL_TOOL_LISTING}
BASELINES: dict[int, frozenset[str]] = {0: frozenset(), 1: BASELINE_1, 2: BASELINE_2}
# The baseline the gateway starts runs with.
CURRENT_BASELINE = 2


class NewerBaseline(RuntimeError):
    """Not an ApplicationError: it fails the workflow task, not the run, so Temporal retries the
    task until a worker that knows the baseline (deployed after the gateway, by mistake) takes
    it. Failing the run instead would record a history no newer worker could replay."""


def check_baseline(baseline: int) -> None:
    if baseline > CURRENT_BASELINE:
        raise NewerBaseline(
            f"the run was started at baseline {baseline}, newer than this worker's "
            f"({CURRENT_BASELINE}): upgrade the workers before the gateways"
        )


def patched(patch_id: str, baseline: int) -> bool:
    """`workflow.patched(patch_id)`, answered from the run's baseline when it implies it."""
    if patch_id in BASELINES.get(baseline, frozenset()):
        return True
    return workflow.patched(patch_id)
