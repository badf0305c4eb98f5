"""Scenario 3: worker CPU per activity of an agent run ("What is 17 * 23?": intent, context,
the calculator, plan, steps, ...) against a hand-written workflow with as many activities.

    python -m bench.agent_cpu [--rounds 3] [--runs 30]

Each round, in a rotated order, `--runs` agent runs (durable-agent's worker) and as many
`RawSteps` runs (a plain SDK worker), 10 at a time; the worker's CPU (psutil) over the batch,
divided by the runs and by the activities a run scheduled (counted in one run's history, local
activities included).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench import durable, harness
from bench.harness import CpuMeter, Row
from bench.stack import bench_stack

CONCURRENCY = 10


async def activities_of(handle: WorkflowHandle[object, object]) -> int:
    history = await handle.fetch_history()
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    marker = EventType.EVENT_TYPE_MARKER_RECORDED
    return sum(
        1
        for event in history.events
        if event.event_type == scheduled
        or (
            event.event_type == marker
            and "local_activity" in event.marker_recorded_event_attributes.marker_name
        )
    )


async def scenario(rounds: int, runs: int | None) -> list[Row]:
    runs = runs or 30
    row = Row(
        key="agent_cpu",
        scenario=f'agent run "{durable.QUERY}": worker CPU per activity',
        unit="ms",
        goal="≤ 1.05× A",
        command="python -m bench.agent_cpu --rounds 3 --runs 30",
        baselines=["A (raw, same activity count)"],
        ours=["B (agent run)"],
        ratios=[("B/A", "B (agent run)", "A (raw, same activity count)")],
    )
    with bench_stack(raw_worker=True, gateway=False) as stack:
        assert stack.worker and stack.raw_worker
        ours, settings = await durable.connect_ours(stack.temporal_address, stack.task_queue)
        raw = await Client.connect(stack.temporal_address)
        probe = await durable.start_agent(ours, settings)
        await probe.result()
        count = await activities_of(probe)
        row.note = f"an agent run scheduled {count} activities; the baseline runs {count}."
        harness.say(f"agent run: {count} activities")
        sides = {
            "B (agent run)": (lambda: durable.start_agent(ours, settings), stack.worker.pid),
            "A (raw, same activity count)": (
                lambda: durable.start_raw(raw, "RawSteps", count, stack.raw_task_queue),
                stack.raw_worker.pid,
            ),
        }
        for start, _ in sides.values():
            await durable.completed_batch(start, 5, 5)  # warm-up
        for round_ in range(rounds):
            for name in harness.rotated(list(sides), round_):
                start, pid = sides[name]
                meter = CpuMeter([pid])
                meter.start()
                await durable.completed_batch(start, runs, CONCURRENCY)
                (cpu_s,) = meter.stop()
                row.add(name, cpu_s * 1000 / (runs * count))
    return [row]


if __name__ == "__main__":
    harness.main(scenario, __doc__, rounds=3, runs=30)
