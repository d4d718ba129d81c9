"""Coverage's exchange sessions are kept on disk: the cached arrays are the calendar's own, read back without
building the calendar again."""
from __future__ import annotations

import numpy as np

from trader.sim.clock import TradingCalendar
from trader.simulation import coverage


def test_sessions_cached_on_disk_are_the_calendars_own(tmp_path, monkeypatch):
    monkeypatch.setenv("MMR_CACHE_DIR", str(tmp_path / "mmr"))
    cal = TradingCalendar("exchange", years_back=2, years_ahead=1)
    built = cal.sessions("XNYS")
    first = coverage._stored_sessions(cal, "XNYS")
    assert len(list((tmp_path / "mmr").glob("sessions_*.npz"))) == 1
    assert np.array_equal(first[0], built.open) and np.array_equal(first[1], built.close) and len(first[0]) > 400

    def no_build(self, name):
        raise AssertionError("the calendar was built again")

    real = TradingCalendar.sessions
    monkeypatch.setattr(TradingCalendar, "sessions", no_build)
    again = coverage._stored_sessions(cal, "XNYS")
    assert again[0].dtype == built.open.dtype and np.array_equal(again[0], built.open)
    assert np.array_equal(again[1], built.close)
    # another calendar is a different entry, built from its own sessions
    monkeypatch.setattr(TradingCalendar, "sessions", real)
    fx = coverage._stored_sessions(cal, coverage.calendar_of("CASH"))
    assert len(list((tmp_path / "mmr").glob("sessions_*.npz"))) == 2 and len(fx[0]) > 0
