"""The `durable-agent` terminal client, as a user runs it, against the real gateway."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.helpers import with_default_sigint

CLI = str(Path(sys.executable).parent / "durable-agent")


def _cli(
    stack: Stack, *args: str, input: str | None = None, check: bool = False, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(stack),
        check=check,
    )


def _env(stack: Stack) -> dict[str, str]:
    import os

    return {**os.environ, "DURABLE_AGENT_URL": stack.base_url}


def test_run_answers_a_question_from_piped_stdin(stack: Stack):
    # A blank line is asked again, not sent.
    done = _cli(stack, "run", "Plan my trip to Lisbon", input="\nThree days in May\n", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "? I found nothing about" in done.stdout
    assert "Three days in May" in done.stdout.split("? ")[-1]
    assert done.stdout.rstrip().endswith("Three days in May")
    run_id = done.stderr.split("run ", 1)[1].split()[0]

    listing = _cli(stack, "ls", "--limit", "100", check=True)
    assert run_id in listing.stdout

    again = _cli(stack, "attach", run_id)
    assert again.returncode == 0 and "? " not in again.stdout  # old question not asked again
    assert again.stdout.rstrip().endswith("Three days in May")


def test_calculator_run_prints_progress_and_the_result(stack: Stack):
    done = _cli(stack, "run", "What is 17 * 23?", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stage: context" in done.stdout and "tool calculator" in done.stdout
    assert "391" in done.stdout.splitlines()[-1]


@pytest.fixture(params=["from a terminal", "as a background job"])
def launched(request: pytest.FixtureRequest) -> Iterator[None]:
    """The SIGINT disposition this test process would have, had it been started from a terminal,
    or as a background job (`make test &`, nohup): there SIGINT is ignored, and children inherit
    that."""
    background = request.param == "as a background job"
    previous = signal.signal(
        signal.SIGINT, signal.SIG_IGN if background else signal.default_int_handler
    )
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_detaches_and_says_how_to_reattach(stack: Stack, launched: None):
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        run_id = http.post("/api/v1/runs", json={"query": "Plan my trip to Lisbon"}).json()[
            "run_id"
        ]
        # As a user's Ctrl-C would: the CLI gets SIGINT's default action, whatever we inherited.
        proc = subprocess.Popen(
            with_default_sigint([CLI, "attach", run_id]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(stack),
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # until the question is asked
            if line.startswith("? "):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert f"durable-agent attach {run_id}" in err
        state = http.get(f"/api/v1/runs/{run_id}").json()
        assert state["status"] == "waiting_for_input"  # detaching leaves the run alone
        http.post(f"/api/v1/runs/{run_id}/cancel")


def test_errors_are_one_line_not_a_traceback(stack: Stack):
    missing = _cli(stack, "attach", "run-does-not-exist")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "durable-agent: 404: no run with id 'run-does-not-exist'"
    unreachable = _cli(stack, "--url", "http://127.0.0.1:9", "ls")
    assert unreachable.returncode == 1 and "cannot reach the gateway" in unreachable.stderr
    assert "Traceback" not in missing.stderr + unreachable.stderr


def test_agents_are_listed_and_run_by_name(stack: Stack):
    listing = _cli(stack, "agents", check=True)
    names = [line.split()[0] for line in listing.stdout.splitlines()[1:]]
    assert {"default", "support", "triage", "extractor"} <= set(names)
    done = _cli(stack, "run", "--agent", "triage", "What is 6 * 7?", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout.splitlines()[-1]
