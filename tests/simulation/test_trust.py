"""Research you can trust: coverage, provenance, walk-forward matching, annualisation, capital shares, the
quality score and the lookahead checker, each against something a wrong implementation fails."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trader.data.bars import BarStore
from trader.data.store import research_store
from trader.errors import WalkForwardMismatch
from trader.simulation.backtester import Costs, run_backtest
from trader.simulation.coverage import SIM_GATEWAY, SIM_MODEL, VENDOR, data_report, measure
from trader.simulation.data import load_bars, sim_bars
from trader.simulation.digest import render_digest
from trader.simulation.lookahead import check_lookahead
from trader.simulation.metrics import annualization
from trader.simulation.store import get_run, list_runs, quality_score, save_run
from trader.simulation.validate import validate_run, walkforward_mismatches
from trader.simulation.walkforward import WalkForwardResult, save_walkforward
from trader.strategy.api import Action, Signal, Strategy


def _daily(n: int, start: str = "2025-01-06", price: float = 100.0) -> pd.DataFrame:
    idx = pd.bdate_range(start, periods=n, tz="UTC")
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1e6}, index=idx)


# ------------------------------------------------------------------ coverage


def test_six_stored_bars_of_a_year_are_measured_and_warned(tmp_path):
    import exchange_calendars as xcals

    now = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    sessions = xcals.get_calendar("XNYS").sessions_in_range(now - pd.Timedelta(days=30), now - pd.Timedelta(days=2))
    six = _daily(6).set_axis(pd.DatetimeIndex(sessions[-6:]).tz_localize("UTC"))
    BarStore.open(tmp_path).ingest(265598, "1 day", "ib", six)
    bars = {265598: load_bars(265598, 365, "1 day", str(tmp_path))}
    report = data_report(bars, "1 day")
    cov = report["coverage"][0]
    assert cov["present_bars"] == 6 and 245 <= cov["expected_bars"] <= 256 and not cov["ok"]
    assert cov["first_bar"].startswith(str(six.index[0].date()))
    assert report["provenance"] == VENDOR
    assert any("only 6 of" in w for w in report["warnings"]), report["warnings"]


def test_full_coverage_has_no_warning_and_holidays_are_not_expected():
    # 2025-12-22 .. 2026-01-02: Christmas and New Year's Day are XNYS holidays.
    idx = pd.DatetimeIndex(["2025-12-22", "2025-12-23", "2025-12-24", "2025-12-26", "2025-12-29", "2025-12-30",
                            "2025-12-31", "2026-01-02"], tz="UTC")
    c = measure(1, idx, pd.Timestamp("2025-12-22", tz="UTC"), pd.Timestamp("2026-01-03", tz="UTC"), "1 day")
    assert (c.expected_bars, c.present_bars, c.ok) == (8, 8, True)
    c = measure(1, idx[:2], pd.Timestamp("2025-12-22", tz="UTC"), pd.Timestamp("2026-01-03", tz="UTC"), "1 day")
    assert (c.present_bars, c.ratio, c.ok) == (2, 0.25, False)


def test_intraday_coverage_counts_regular_hours_bars():
    # 2026-03-02 (a Monday): 390 one-minute bars from 14:30 to 21:00 UTC; half of them present.
    day = pd.date_range("2026-03-02 14:30", periods=390, freq="1min", tz="UTC")
    c = measure(1, day[::2], day[0], day[-1] + pd.Timedelta(minutes=1), "1 min")
    assert (c.expected_bars, c.present_bars) == (390, 195) and not c.ok


# ------------------------------------------------------------------ provenance


def test_provenance_of_each_source_and_through_store_list_and_digest(tmp_path):
    store = BarStore.open(tmp_path)
    recent = str((pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=100)).date())
    store.ingest(1, "1 day", "ib", _daily(40, start=recent))
    store.ingest(2, "1 day", "ib_sim", _daily(40, start=recent))
    frames = {c: load_bars(c, 200, "1 day", str(tmp_path)) for c in (1, 2, 8314)}  # 8314: nothing stored
    per = data_report(frames, "1 day")["per_conid"]
    assert per == {1: VENDOR, 2: SIM_GATEWAY, 8314: SIM_MODEL}
    assert data_report({1: frames[1], 2: frames[2]}, "1 day")["provenance"] == SIM_GATEWAY
    assert data_report({1: frames[1], 8314: frames[8314]}, "1 day")["provenance"] == SIM_MODEL

    research = research_store(tmp_path)
    ids = {}
    for c in (1, 2, 8314):
        result = run_backtest(_AlwaysLong(), {c: frames[c]})
        ids[c] = save_run(research, result, strategy="x.py", class_name="AlwaysLong", source_hash="h", params={},
                          conids=[c], bar_size="1 day", costs=Costs(), data=data_report({c: frames[c]}, "1 day"))
    listed = {r["id"]: r for r in list_runs(research)}
    assert [listed[ids[c]]["provenance"] for c in (1, 2, 8314)] == [VENDOR, SIM_GATEWAY, SIM_MODEL]
    assert get_run(research, ids[2])["provenance"] == SIM_GATEWAY
    assert listed[ids[1]]["min_coverage"] is not None and listed[ids[1]]["min_coverage"] < 0.9  # 40 of ~138 sessions

    job = {"name": "j", "conids": [2], "grid": {}, "provenance": SIM_GATEWAY,
           "warnings": data_report({2: frames[2]}, "1 day")["warnings"]}
    text = render_digest({"id": "sw1", "name": "n", "jobs": [job]}, [])
    assert "simulated_gateway_history" in text and "SIMULATED gateway" in text and "expected 1 day bars" in text


def test_validate_refuses_sim_gateway_history_and_reports_provenance(tmp_path):
    from trader.config import PromotionConfig

    BarStore.open(tmp_path).ingest(265598, "1 day", "ib_sim", sim_bars(265598, 120, "1 day"))
    research = research_store(tmp_path)
    frames = {265598: load_bars(265598, 200, "1 day", str(tmp_path))}
    result = run_backtest(_AlwaysLong(), frames)
    run_id = save_run(research, result, strategy="x.py", class_name="AlwaysLong", source_hash="h", params={},
                      conids=[265598], bar_size="1 day", costs=Costs(), data=data_report(frames, "1 day"))
    criteria = PromotionConfig(require_positive_oos=False)
    doc = validate_run(research, run_id, criteria, data_dir=tmp_path)
    stored = next(c for c in doc["checks"] if c["check"] == "stored_bars")
    assert stored["passed"] is False and stored["value"] == 0.0
    assert doc["provenance"] == SIM_GATEWAY and any("SIMULATED gateway" in w for w in doc["warnings"])


# ------------------------------------------------------------------ walk-forward must match the run


def _wf(store, **over):
    kw = {"strategy": "ma_crossover.py", "class_name": "MACrossover", "conids": [265598], "bar_size": "1 day",
          "grid": {"FAST": [5, 10]}, **over}
    res = WalkForwardResult(windows=[], summary={"oos_total_return": 0.05}, oos_equity=pd.Series(dtype=float))
    return save_walkforward(store, res, **kw)


MISMATCHES = [
    ({"strategy": "rsi_mean_reversion.py"}, "strategy"),
    ({"class_name": "Other"}, "class"),
    ({"conids": [8314]}, "conIds"),
    ({"bar_size": "1 hour"}, "bar size"),
    ({"grid": {"FAST": [20, 30]}}, "FAST=5"),
]


def test_validate_refuses_a_walk_forward_of_something_else(tmp_path):
    from trader.config import PromotionConfig

    store = research_store(tmp_path)
    result = run_backtest(_AlwaysLong(), _daily(60))
    run_id = save_run(store, result, strategy="ma_crossover.py", class_name="MACrossover", source_hash="h",
                      params={"FAST": 5}, conids=[265598], bar_size="1 day", costs=Costs())
    good = _wf(store)
    assert validate_run(store, run_id, PromotionConfig(), walkforward_id=good, data_dir=tmp_path)["walkforward_id"] \
        == good
    for over, needle in MISMATCHES:
        with pytest.raises(WalkForwardMismatch, match=needle):
            validate_run(store, run_id, PromotionConfig(), walkforward_id=_wf(store, **over), data_dir=tmp_path)


def test_walkforward_mismatch_uses_the_declared_defaults():
    run = {"strategy": "s.py", "class_name": "S", "conids": [1], "bar_size": "1 day", "params": {}}
    wf = {**run, "grid": {"FAST": [5, 20]}}
    assert walkforward_mismatches(run, wf) == []  # default unknown: not compared
    assert "FAST=10" in walkforward_mismatches(run, wf, {"FAST": 10})[0]  # the run used the default 10
    assert walkforward_mismatches({**run, "params": {"FAST": 20.0}}, wf, {"FAST": 10}) == []


# ------------------------------------------------------------------ annualisation


def test_annualisation_from_the_bars_own_frequency():
    weekdays = pd.bdate_range("2024-01-01", "2025-12-31", tz="UTC")
    ppy, basis = annualization(weekdays)
    assert ppy == pytest.approx(len(weekdays) / ((weekdays[-1] - weekdays[0]).days + 1) * 365.25, rel=1e-9)
    assert 255 < ppy < 265 and "own frequency" in basis
    every_day = pd.date_range("2024-01-01", "2025-12-31", tz="UTC")
    assert annualization(every_day)[0] == pytest.approx(365.25, rel=1e-9)
    week = pd.date_range("2026-03-02 14:30", periods=390, freq="1min", tz="UTC")
    assert annualization(week)[0] == 252 * 390  # a short span: 252 sessions × bars per session


def test_metrics_state_their_annualisation():
    idx = pd.date_range("2025-01-01", periods=400, tz="UTC")  # a market open every day
    close = 100 * np.cumprod(1 + np.random.default_rng(3).normal(0, 0.01, 400))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close}, index=idx)
    m = run_backtest(_AlwaysLong(), bars).metrics
    assert m["periods_per_year"] == pytest.approx(365.25, rel=1e-9)
    eq = run_backtest(_AlwaysLong(), bars).equity.to_numpy()
    rets = np.diff(np.concatenate(([100_000.0], eq))) / np.concatenate(([100_000.0], eq))[:-1]
    assert m["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(365.25), rel=1e-9)


# ------------------------------------------------------------------ capital share per conId


class _AlwaysLong(Strategy):
    vectorized = True

    def signals(self, df):
        return pd.Series(1.0, index=df.index)


def test_each_conid_gets_its_share_of_the_capital():
    # Two conIds at 100 and 50: all-in sizing of 100,000 split in two = 500 and 1,000 shares.
    a, b = _daily(5, price=100.0), _daily(5, price=50.0)
    r = run_backtest(_AlwaysLong(), {1: a, 2: b}, capital=100_000.0)
    pos = {1: 500.0, 2: 1000.0}  # with the whole capital each, conId 2 would hold 2,000 shares
    # The positions stay open: read their size from the equity's response to a last-bar price move.
    b2 = b.copy()
    b2.loc[b2.index[-1], "close"] = 60.0
    r2 = run_backtest(_AlwaysLong(), {1: a, 2: b2}, capital=100_000.0)
    assert float(r2.equity.iloc[-1]) - float(r.equity.iloc[-1]) == pytest.approx(pos[2] * 10.0)
    three = run_backtest(_AlwaysLong(), {1: a, 2: b2, 3: _daily(5, price=10.0)}, capital=150_000.0)
    assert float(three.equity.iloc[-1]) == pytest.approx(150_000.0 + pos[2] * 10.0)


# ------------------------------------------------------------------ quality score by hand


@pytest.mark.parametrize("sharpe,trades,dd,expected", [
    (1.5, 12, 0.2, 1.5 * math.sqrt(12 / 30) * 0.8),   # 0.758947…: few trades scale it down
    (1.5, 120, 0.2, 1.2),                             # capped at 1 from 30 trades on
    (2.0, 30, 0.5, 1.0),
    (2.0, 0, 0.1, 0.0),
    (-1.0, 30, 0.0, -1.0),
    (1.0, 30, 1.5, 0.0),                              # a drawdown above 100% counts as 100%
])
def test_quality_score_against_hand_computed_values(sharpe, trades, dd, expected):
    assert quality_score({"sharpe": sharpe, "trade_count": trades, "max_drawdown": dd}) == pytest.approx(expected)
    assert quality_score({"sharpe": 1.5, "trade_count": 12, "max_drawdown": 0.2}) == pytest.approx(0.7589466, abs=1e-7)


# ------------------------------------------------------------------ lookahead: a bar-by-bar peeker


class _BarPeeker(Strategy):
    """Looks one bar ahead through the view's backing arrays (which hold every bar)."""

    def on_prices(self, view):
        n = len(view)
        full = view._cols["close"]
        if n < len(full):
            return Signal(Action.BUY if full[n] > full[n - 1] else Action.SELL)
        return Signal(Action.FLAT)


class _BarHonest(Strategy):
    def on_prices(self, view):
        c = view.close
        return Signal(Action.BUY if len(c) > 1 and c[-1] > c[-2] else Action.SELL)


def test_lookahead_catches_a_bar_by_bar_peeker_and_passes_an_honest_one():
    bars = sim_bars(265598, 120, "1 day")
    bad = check_lookahead(_BarPeeker, bars, mode="bar-by-bar")
    assert not bad.ok and bad.first_bad_bar is not None and "lookahead" in bad.meaning
    good = check_lookahead(_BarHonest, bars, mode="bar-by-bar")
    assert good.ok and good.checked_bars > 10



def test_sweep_list_summary_takes_the_worst_provenance_and_every_warning():
    from trader.simulation.sweep import _data_summary

    jobs = [{"name": "a", "provenance": VENDOR, "warnings": []},
            {"name": "b", "provenance": SIM_GATEWAY, "warnings": ["conId 2: only 6 of 250 expected 1 day bars"]},
            {"name": "c", "data": {"3": "simulated"}}]  # a sweep stored before provenance: still flagged
    out = _data_summary(jobs)
    assert out["provenance"] == SIM_MODEL  # job c's simulated bars are the worst
    assert _data_summary(jobs[:2])["provenance"] == SIM_GATEWAY
    assert out["data_warnings"] == ["job c: conId 3 used SIMULATED prices", "job b: conId 2: only 6 of 250 expected "
                                    "1 day bars"]


def _store_series(tmp_path, con_id: int, symbol: str, sec_type: str, exchange: str, idx: pd.DatetimeIndex,
                  bar_size: str) -> None:
    from trader.data.bars import BarSymbol, remember_symbol

    store = BarStore.open(tmp_path)
    remember_symbol(store, BarSymbol(con_id, symbol, sec_type, exchange, "NASDAQ" if sec_type == "STK" else ""))
    px = np.linspace(100, 101, len(idx))
    store.ingest(con_id, bar_size, "ib", pd.DataFrame({"open": px, "high": px, "low": px, "close": px,
                                                        "volume": 1e6}, index=idx))


def test_coverage_follows_each_contracts_own_calendar_fx_crypto_and_stock(tmp_path):
    from trader.simulation.data import load_bars_between

    # Christmas week 2025: FX trades Thursday 25th (24x5), NYSE does not; crypto trades all seven days.
    week = pd.DatetimeIndex(["2025-12-22", "2025-12-23", "2025-12-24", "2025-12-25", "2025-12-26"], tz="UTC")
    _store_series(tmp_path, 12087792, "EUR", "CASH", "IDEALPRO", week, "1 day")
    _store_series(tmp_path, 265598, "AAPL", "STK", "SMART", week.delete(3), "1 day")
    _store_series(tmp_path, 479624278, "BTC", "CRYPTO", "PAXOS", week, "1 day")
    # FX hourly: only the 12 Asian hours of each weekday stored → half of the 24x5 day (not 0% of NYSE's hours).
    hours = pd.date_range("2026-02-02", "2026-02-07", freq="1h", tz="UTC", inclusive="left")
    _store_series(tmp_path, 12087792, "EUR", "CASH", "IDEALPRO", hours[hours.hour < 12], "1 hour")

    def cov(con_id, start, end, bar_size="1 day"):
        bars = {con_id: load_bars_between(con_id, start, end, 0, bar_size, str(tmp_path))}
        run = run_backtest(_Hold(), bars)  # a run on the stored bars, as `backtest` does
        assert len(run.equity) == len(bars[con_id])
        return data_report(bars, bar_size)["coverage"][0]

    fx = cov(12087792, "2025-12-22", "2025-12-27")
    assert (fx["calendar"], fx["expected_bars"], fx["present_bars"], fx["ok"]) == ("FX24x5", 5, 5, True)
    stock = cov(265598, "2025-12-22", "2025-12-27")
    assert (stock["calendar"], stock["expected_bars"], stock["present_bars"], stock["ok"]) == ("XNYS", 4, 4, True)
    btc = cov(479624278, "2025-12-21", "2025-12-27")  # a daily range counts its end date's session
    assert (btc["calendar"], btc["expected_bars"], btc["present_bars"]) == ("24x7", 7, 5) and not btc["ok"]
    # FX week of 2026-02-01 17:00 New York (22:00 UTC Sunday) to Friday 17:00: 5 × 24 hourly bars expected.
    fxh = cov(12087792, "2026-02-01T22:00:00+00:00", "2026-02-06T22:00:00+00:00", "1 hour")
    assert (fxh["expected_bars"], fxh["present_bars"], fxh["ok"]) == (120, 60, False)
    warnings = data_report({12087792: load_bars_between(12087792, "2026-02-01T22:00:00+00:00",
                                                        "2026-02-06T22:00:00+00:00", 0, "1 hour", str(tmp_path))},
                           "1 hour")["warnings"]
    assert any("60 of 120" in w and "FX24x5" in w for w in warnings), warnings


class _Hold(Strategy):
    def on_prices(self, view):
        return None


def test_simulated_frames_carry_their_contracts_calendar():
    assert sim_bars(265598, 30).attrs["calendar"] == "XNYS"
