"""The transport settings refuse values that would let a request through that Temporal cannot
take, or that would never time out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings


def test_the_body_limit_stays_under_grpcs_message_limit() -> None:
    assert Settings(max_body_bytes=2 * 1024 * 1024).max_body_bytes == 2 * 1024 * 1024
    for bad in (2 * 1024 * 1024 + 1, 10 * 1024 * 1024, 0, -1):
        with pytest.raises(ValidationError, match="max_body_bytes"):
            Settings(max_body_bytes=bad)


def test_read_timeouts_are_positive() -> None:
    settings = Settings()
    assert (settings.header_timeout_s, settings.body_timeout_s) == (10.0, 30.0)
    for field in ("header_timeout_s", "body_timeout_s"):
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: 0})


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_AGENT_MAX_BODY_BYTES", str(10 * 1024 * 1024))
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings()
    monkeypatch.setenv("DURABLE_AGENT_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("DURABLE_AGENT_HEADER_TIMEOUT_S", "2.5")
    assert (Settings().max_body_bytes, Settings().header_timeout_s) == (1000, 2.5)
