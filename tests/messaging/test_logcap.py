"""Bounded logging of hostile input: previews and the per-peer rate limit."""

from __future__ import annotations

import logging

import pytest

from trader.messaging import _logcap
from trader.messaging._logcap import RateLimitedLog, frames_summary, preview


def test_preview_cuts_long_data_and_says_how_long_it_was() -> None:
    assert preview(b"short") == "b'short'"
    text = preview(b"x" * 8_000_000)
    assert len(text) < 100 and "8000000 bytes" in text
    summary = frames_summary([b"a" * 10_000, b"b", b"c", b"d", b"e"])
    assert len(summary) < 300 and "5 frames, 10004 bytes" in summary and "2 more" in summary


def test_one_warning_per_peer_per_interval_then_the_count_of_the_suppressed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    monkeypatch.setattr(_logcap.time, "monotonic", lambda: now[0])
    logger = logging.getLogger("test.logcap")
    limited = RateLimitedLog(logger, interval=10.0, max_keys=2)
    with caplog.at_level(logging.WARNING, "test.logcap"):
        assert limited.warning(b"peer-a", "junk %d", 1)
        assert not limited.warning(b"peer-a", "junk %d", 2)
        assert not limited.warning(b"peer-a", "junk %d", 3)
        assert limited.warning(b"peer-b", "junk %d", 4)  # another peer has its own allowance
        now[0] += 10.0
        assert limited.warning(b"peer-a", "junk %d", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "junk 1", "junk 4", "junk 5 (2 similar messages suppressed)"]
    assert limited.warning(b"peer-c", "x") and len(limited._seen) <= 2  # the table stays bounded
