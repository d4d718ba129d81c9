"""The simulated market looks like one: sector correlation, fat tails, volatility clustering, gaps at the open,
a U-shaped volume profile, news jumps the news set explains, option ladders that follow the price — and it is
still a pure function of (seed, contract, time) whose history agrees with the live quotes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from trader.sim.clock import SimClock
from trader.sim.contracts import ContractUniverse
from trader.sim.discovery import historical_news
from trader.sim.market import SimMarket, model_spot

T0 = datetime(2026, 11, 24, 15, 30, 17, tzinfo=UTC)  # a Tuesday, 10:30 New York
SECTORS = {"Technology": ("AAPL", "MSFT", "ORCL", "ADBE"), "Financial": ("JPM", "BAC", "GS", "WFC"),
           "Energy": ("XOM", "CVX", "COP")}
YEARS = 2


def _ac(x: np.ndarray, lag: int = 1) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / (x * x).mean())


def _kurtosis(r: np.ndarray) -> float:
    r = r - r.mean()
    return float((r**4).mean() / (r**2).mean() ** 2)


@pytest.fixture(scope="module")
def daily(universe) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """symbol -> (sector, close-to-close log returns, open-vs-previous-close log gaps) of regular-hours daily bars."""
    market = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    out = {}
    for sector, symbols in SECTORS.items():
        for sym in symbols:
            c = universe.find(symbol=sym, sec_type="STK")[0]
            bars = market.history(c.con_id, T0, YEARS * 365 * 86400, 86400, use_rth=True)
            close = np.log([b.close for b in bars])
            opens = np.log([b.open for b in bars])
            out[sym] = (sector, np.diff(close), opens[1:] - close[:-1])
    return out


def test_stocks_correlate_more_within_their_sector_than_across(daily):
    names = list(daily)
    corr = np.corrcoef([daily[s][1] for s in names])
    within = [corr[i, j] for i in range(len(names)) for j in range(i) if daily[names[i]][0] == daily[names[j]][0]]
    across = [corr[i, j] for i in range(len(names)) for j in range(i) if daily[names[i]][0] != daily[names[j]][0]]
    assert np.mean(across) > 0.1  # the market factor: everything co-moves a little
    assert np.mean(within) > np.mean(across) + 0.1


def test_returns_are_fat_tailed_with_clustered_volatility(daily):
    returns = [r for _, r, _ in daily.values()]
    assert all(_kurtosis(r) > 3.5 for r in returns), [round(_kurtosis(r), 1) for r in returns]
    # volatility clusters: big moves follow big moves (pooled over the stocks, one sample is noisy)
    assert np.mean([_ac(np.abs(r)) for r in returns]) > 0.03
    assert np.mean([_ac(r * r) for r in returns]) > 0.02
    # but returns themselves are close to unpredictable (no built-in mean reversion to exploit)
    assert abs(np.mean([_ac(r) for r in returns])) < 0.1


def test_sessions_open_with_a_gap(daily):
    for sym, (_, r, gaps) in daily.items():
        assert np.mean(np.abs(gaps) > 1e-4) > 0.9, sym  # nearly every session opens away from the last close
        assert 0.1 < gaps.var() / r.var() < 0.9, sym  # the night carries a real share of the variance


def test_index_and_vix_move_against_each_other(universe):
    market = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    spx, vix = (universe.find(symbol=s, sec_type="IND")[0].con_id for s in ("SPX", "VIX"))
    closes = {cid: np.log([b.close for b in market.history(cid, T0, 365 * 86400, 86400, use_rth=True)])
              for cid in (spx, vix)}
    assert np.corrcoef(np.diff(closes[spx]), np.diff(closes[vix]))[0, 1] < -0.1


def test_intraday_volume_is_u_shaped(universe):
    market = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    aapl = universe.find(symbol="AAPL", sec_type="STK")[0]
    a = market.history_arrays(aapl.con_id, T0 - timedelta(hours=2), 20 * 86400, 60, use_rth=True)
    minute = ((a["time"] - 14 * 3600 - 30 * 60) % 86400 // 60).astype(int)  # 0 = 09:30 New York (EST)
    vol = a["volume"]
    first, last = vol[minute < 30].mean(), vol[(minute >= 360) & (minute < 390)].mean()
    midday = vol[(minute >= 150) & (minute < 240)].mean()
    assert first > 1.5 * midday and last > 1.5 * midday


def test_news_jumps_gap_the_open_and_make_the_news(universe):
    clock = SimClock(T0, manual=True)
    market = SimMarket(universe, clock, seed=42)
    found = []
    for c in universe:
        if c.sec_type != "STK" or c.industry == "Funds":
            continue
        for back in range(1, 8):
            day = (T0 - timedelta(days=back)).date()
            jump = market.news_jump(c.con_id, (day - date(1970, 1, 1)).days)
            if jump:
                found.append((c, day, jump))
    assert found, "about four jumps a year per stock: some of ~240 stocks jump in a week"
    c, day, jump = found[0]
    gap = market.gap_time(c.con_id, day)
    before, after = market.quote(c.con_id, gap - timedelta(minutes=1)), market.quote(c.con_id, gap)
    assert abs(np.log(after.last / before.last)) > 0.6 * abs(jump)  # the move lands in the gap minute
    news = historical_news(universe, market, c.con_id, "BRFG", None, None, 50)
    headline = next(i for i in news if i.article_id.endswith(f"{day:%Y%m%d}.4"))
    assert headline.time == gap and ("jumps" if jump > 0 else "slides") in headline.headline


def test_history_and_live_agree_across_the_gap_minute(universe):
    market = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    aapl = universe.find(symbol="AAPL", sec_type="STK")[0].con_id
    gap = market.gap_time(aapl, T0.date())
    bars = market.history(aapl, gap + timedelta(minutes=3), 6 * 60, 60)
    for b in bars[:-1]:
        seconds = [market.quote(aapl, b.time + timedelta(seconds=s)).last for s in range(61)]
        assert (b.open, b.high, b.low, b.close) == (seconds[0], max(seconds), min(seconds), seconds[-1])


def test_pure_function_of_seed_contract_and_time(universe):
    """Blocks of the factor model are cached and built recursively: the order of queries must not matter."""
    far, near = T0 - timedelta(days=900), T0
    a = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    b = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    jpm, xom = (universe.find(symbol=s, sec_type="STK")[0].con_id for s in ("JPM", "XOM"))
    first = [a.quote(jpm, far), a.quote(xom, near), a.quote(jpm, near)]
    second = [b.quote(jpm, near), b.quote(xom, near), b.quote(jpm, far)]
    assert first == [second[2], second[1], second[0]]
    assert SimMarket(universe, SimClock(T0, manual=True), seed=7).quote(jpm, near).last != first[2].last


def test_option_ladders_follow_the_market():
    day = T0.date()
    centred = ContractUniverse.load(today=day, spot=model_spot(42, day))
    market = SimMarket(centred, SimClock(T0, manual=True), seed=42)
    for sym in ("SPY", "AAPL"):
        und = centred.find(symbol=sym, sec_type="STK")[0]
        strikes = centred.option_chain(und.con_id)[0][4]
        spot = market.quote(und.con_id).last
        assert strikes[0] < spot < strikes[-1]
        assert abs(strikes[len(strikes) // 2] / spot - 1) < 0.05


def test_scanners_find_gaps_and_movers_in_24x7_mode(universe):
    """Quotes report the session's open and the last regular close even when the live clock runs 24x7, so the
    gap and mover scans (and the ideas presets built on them) have something real to rank."""
    from trader.sim.discovery import scan

    market = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    assert market.calendar.always_open
    gaps_up, gaps_down = scan(universe, market, "HIGH_OPEN_GAP"), scan(universe, market, "LOW_OPEN_GAP")
    gainers = scan(universe, market, "TOP_PERC_GAIN")
    assert gaps_up[0].value > 1.0 and gaps_down[0].value > 0.5  # (LOW_OPEN_GAP ranks by -gap)
    assert gainers[0].value > 1.0
    q = market.quote(gaps_up[0].contract.con_id)
    assert q.open != q.close  # the open is after the overnight gap, not the previous close
