"""make up's supervisor on real processes that die at once: back-off, log lines, giving up."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from config import Settings
from devstack import up
from tests.helpers import until


def test_backoff_doubles_up_to_its_ceiling():
    assert [up.backoff_s(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_process_that_keeps_dying_is_restarted_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(up, "BACKOFF_FIRST_S", 0.01)
    stack = up.Stack(Settings(data_dir=tmp_path), tmp_path)
    stack.services.append(up.Service("flaky", [sys.executable, "-c", "raise SystemExit(3)"]))
    stack.services[0].start()
    caplog.set_level(logging.INFO, logger="devstack")
    try:

        def tick() -> str | None:
            try:
                stack.supervise_once()
            except RuntimeError as exc:
                return str(exc)
            return None

        reason = until(tick, deadline_s=30, interval=0.01, what="the supervisor to give up")
    finally:
        stack.stop_all()
    assert (
        reason
        == f"flaky exited with code 3, its {up.MAX_QUICK_DEATHS}th quick death in a row; giving up"
    )
    restarts = [r.getMessage() for r in caplog.records if "restarted" in r.getMessage()]
    assert len(restarts) == up.MAX_QUICK_DEATHS - 1
    assert "flaky (pid" in caplog.text and "exited with code 3; restarting it in 0s" in caplog.text
    assert (tmp_path / up.STATE_FILE).exists()
