"""Metrics and logs of a real worker and gateway: both Prometheus endpoints scraped and parsed
with `prometheus_client.parser`, JSON log lines that name their run, and a workflow log line
that replays do not repeat."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import PROJECT_ROOT, Settings
from devstack.processes import free_port, start, stop
from temporal_client import connect
from tests.conftest import DevServer
from tests.e2e.conftest import start_gateway
from tests.e2e.test_http_api import start_run, wait_for
from tests.helpers import eventually, until


@dataclass
class ObservedStack:
    base_url: str
    worker_metrics: str
    worker_log: Path
    gateway_log: Path
    settings: Settings
    procs: dict[str, Popen[bytes]]
    restart_worker: Callable[[], None]


@pytest.fixture(scope="module")
def observed(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObservedStack]:
    logs = tmp_path_factory.mktemp("observed")
    task_queue = f"obs-{uuid.uuid4().hex}"
    metrics_port = free_port()
    env = {
        "DURABLE_AGENT_TEMPORAL_ADDRESS": dev_server.address,
        "DURABLE_AGENT_TASK_QUEUE": task_queue,
        "DURABLE_AGENT_DATA_DIR": str(logs),
        "DURABLE_AGENT_NOTES_FILE": str(logs / "notes.txt"),
        "DURABLE_AGENT_LOG_FORMAT": "json",
        "DURABLE_AGENT_WORKER_METRICS_PORT": str(metrics_port),
    }
    worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    procs: dict[str, Popen[bytes]] = {}

    def start_worker() -> None:
        procs["worker"] = start(
            [sys.executable, "worker.py"], env=env, log=logs / "worker.log", cwd=PROJECT_ROOT
        )
        until(lambda: httpx.get(worker_metrics, timeout=2).status_code == 200, what="metrics")

    def restart_worker() -> None:
        stop(procs["worker"])
        start_worker()

    start_worker()
    gateway = start_gateway(env, logs / "gateway.log")
    try:
        yield ObservedStack(
            gateway.base_url,
            worker_metrics,
            logs / "worker.log",
            logs / "gateway.log",
            Settings(temporal_address=dev_server.address, task_queue=task_queue),
            procs,
            restart_worker,
        )
    finally:
        stop(gateway.proc)
        stop(procs["worker"])


def scrape(url: str) -> dict[str, Any]:
    """Metric families by name, parsed as Prometheus would."""
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(families: dict[str, Any], name: str, **labels: str) -> list[Any]:
    family = families.get(name)
    assert family is not None, f"{name} not among {sorted(families)}"
    return [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_gateway_and_worker_metrics_and_json_logs(observed: ObservedStack) -> None:
    async with httpx.AsyncClient(base_url=observed.base_url, timeout=30) as http:
        calc = await start_run(http, "What is 17 * 23?")
        await wait_for(http, calc, "completed")
        waiting = await start_run(http, "Plan my trip to Lisbon")
        await wait_for(http, waiting, "waiting_for_input")
        assert (await http.get("/api/v1/runs/nope")).status_code == 404
        async with http.stream("GET", f"/api/v1/runs/{waiting}/events") as stream:
            assert stream.status_code == 200
            gauge = scrape(observed.base_url + "/metrics")
            assert samples(gauge, "durable_agent_sse_streams_open")[0].value == 1

        first = scrape(observed.worker_metrics)
        assert any(name.startswith("temporal_") for name in first)  # the SDK's own, same port
        completed = samples(first, "durable_agent_run_status_transitions", status="completed")
        assert completed and completed[0].value == 1
        nodes = {
            s.labels["activity"]
            for s in samples(first, "durable_agent_activity_duration_seconds", outcome="completed")
        }
        assert {"analyze_intent", "assess_context", "run_tool", "make_plan"} <= nodes
        tokens = samples(first, "durable_agent_llm_tokens", activity="analyze_intent")
        assert {s.labels["direction"] for s in tokens} == {"in", "out"}
        assert all(s.value > 0 for s in tokens if s.name.endswith("_total"))
        assert samples(first, "durable_agent_llm_cost_usd")

        # A malformed signal: the workflow logs it and carries on.
        client = await connect(observed.settings)
        await client.get_workflow_handle(waiting).signal("provide_input", 42)
        until(lambda: ignored_lines(observed.worker_log), what="the ignored signal's log line")
        # A new worker replays the waiting run's history (the signal included) when the answer
        # comes: neither the replayed log line nor the replayed transitions may count again.
        observed.restart_worker()
        answered = await http.post(f"/api/v1/runs/{waiting}/input", json={"text": "May"})
        assert answered.status_code == 200, answered.text
        await wait_for(http, waiting, "completed")

        gateway = scrape(observed.base_url + "/metrics")
        assert samples(gateway, "durable_agent_sse_streams_open")[0].value == 0
        started = samples(
            gateway,
            "durable_agent_http_requests",
            method="POST",
            route="/api/v1/runs",
            status="201",
        )
        assert started and started[0].value == 2
        assert samples(
            gateway, "durable_agent_http_requests", route="/api/v1/runs/{run_id}", status="404"
        )
        latency = samples(
            gateway,
            "durable_agent_http_request_duration_seconds",
            method="GET",
            route="/api/v1/runs/{run_id}",
        )
        count = [s for s in latency if s.name.endswith("_count")]
        assert count and count[0].value >= 2
        assert samples(gateway, "process_resident_memory_bytes")

    after = await eventually(
        lambda: _scrape_async(observed.worker_metrics),
        lambda f: "durable_agent_run_duration_seconds" in f,
        what="run metrics on the new worker",
    )
    statuses = {
        s.labels["status"]: s.value
        for s in samples(after, "durable_agent_run_status_transitions", kind="agent")
    }
    # Only what happened after the restart: the replayed pending -> running -> waiting is not
    # counted again.
    assert statuses == {"running": 1, "completed": 1}, statuses
    stages = {
        s.labels["stage"]
        for s in samples(after, "durable_agent_run_stage_duration_seconds")
        if s.name.endswith("_count")
    }
    assert "execute" in stages and "intent" not in stages
    durations = samples(after, "durable_agent_run_duration_seconds", status="completed")
    assert [s.value for s in durations if s.name.endswith("_count")] == [1]

    # JSON logs: the workflow's line about the malformed signal names its run, once.
    ignored = ignored_lines(observed.worker_log)
    assert len(ignored) == 1, ignored
    assert ignored[0]["run_id"] == waiting and ignored[0]["workflow_id"] == waiting
    assert ignored[0]["level"] == "WARNING" and ignored[0]["attempt"] >= 1
    assert {"time", "logger", "activity"} <= ignored[0].keys()
    # The gateway's lines about a run (its access log included) name it too.
    gateway_lines = json_lines(observed.gateway_log)
    about_calc = [line for line in gateway_lines if line.get("run_id") == calc]
    assert about_calc and all(line["workflow_id"] == calc for line in about_calc)


def ignored_lines(log: Path) -> list[dict[str, Any]]:
    return [line for line in json_lines(log) if "ignored provide_input" in line["message"]]


async def _scrape_async(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(url)
    return {f.name: f for f in text_string_to_metric_families(response.text)}


async def test_an_activity_line_carries_the_activity_and_attempt(
    observed: ObservedStack,
) -> None:
    async with httpx.AsyncClient(base_url=observed.base_url, timeout=30) as http:
        # Division by zero: the tool fails for good, and the SDK logs the failed activity.
        run_id = await start_run(http, "What is 1 / 0?")
        await wait_for(http, run_id, "waiting_for_input")

    def failed_tool_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(observed.worker_log)
            if line.get("run_id") == run_id and line.get("activity") == "run_tool"
        ]

    lines = until(failed_tool_lines, what="a log line of the failed tool call")
    assert lines[0]["workflow_id"] == run_id and lines[0]["attempt"] == 1
    assert "(" not in lines[0]["message"], "the ids are fields, not a suffix of the message"
