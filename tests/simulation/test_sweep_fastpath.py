"""Sweep speed work: the event-driven fill loop and the numpy metrics give exactly the results of the
original per-bar loop (kept here verbatim as the reference) on random targets, sizes and costs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import Costs, Trade, simulate

NO_COSTS = Costs()


def reference_simulate(df: pd.DataFrame, target: np.ndarray, *, con_id: int = 0, capital: float = 100_000.0,
             quantity: float | None = None, fraction: float = 1.0, costs: Costs = NO_COSTS,
             sizes: np.ndarray | None = None) -> tuple[np.ndarray, list[Trade], np.ndarray, float]:
    """Fill loop for one conId. A target decided on bar i is filled at open[i+1]. Quantity is `quantity`
    shares when given, otherwise floor(fraction * equity / fill price). Returns (equity at each close,
    trades, position per bar, traded notional)."""
    o = df["open"].to_numpy(float)
    c = df["close"].to_numpy(float)
    idx = df.index
    n = len(o)
    cash, pos = float(capital), 0.0
    equity = np.empty(n)
    positions = np.zeros(n)
    trades: list[Trade] = []
    notional = 0.0
    entry: tuple[int, float, float, float] | None = None  # (bar, price, qty, commission)
    want = 0.0
    pending_size = math.nan
    for i in range(n):
        if i > 0:
            cur = 0 if pos == 0 else (1 if pos > 0 else -1)
            if want != cur:
                px = o[i]
                if pos != 0:  # close the open position first
                    side = 1 if pos > 0 else -1
                    fill = px * (1 - side * costs.slippage_bps / 1e4) - side * costs.slippage_per_share
                    q = abs(pos)
                    comm = q * fill * costs.commission_bps / 1e4 + q * costs.commission_per_share
                    cash += pos * fill - comm
                    notional += q * fill
                    assert entry is not None
                    e_bar, e_px, e_q, e_comm = entry
                    pnl = side * q * (fill - e_px) - comm - e_comm
                    trades.append(Trade(con_id, side, q, idx[e_bar], e_px, idx[i], fill, comm + e_comm, pnl,
                                        pnl / (q * e_px) if e_px else 0.0))
                    pos, entry = 0.0, None
                if want != 0:
                    side = int(want)
                    fill = px * (1 + side * costs.slippage_bps / 1e4) + side * costs.slippage_per_share
                    if not math.isnan(pending_size) and pending_size > 0:
                        q = float(pending_size)
                    elif quantity is not None:
                        q = float(quantity)
                    else:
                        frac = -pending_size if not math.isnan(pending_size) else fraction
                        per_share_cost = fill * (1 + costs.commission_bps / 1e4) + costs.commission_per_share
                        q = float(math.floor(frac * cash / per_share_cost)) if cash > 0 else 0.0
                    if q > 0:
                        comm = q * fill * costs.commission_bps / 1e4 + q * costs.commission_per_share
                        pos = side * q
                        cash -= pos * fill + comm
                        notional += q * fill
                        entry = (i, fill, q, comm)
        equity[i] = cash + pos * c[i]
        positions[i] = pos
        t = target[i]
        if not math.isnan(t):
            want = float(np.sign(t))
            pending_size = sizes[i] if sizes is not None else math.nan
    return equity, trades, positions, notional


def _bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    idx = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame({"open": open_, "close": close}, index=idx)


@pytest.mark.parametrize("seed", range(40))
def test_event_loop_equals_per_bar_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    df = _bars(n, seed)
    # Sparse targets with NaN holds, fractional directions, and sometimes size hints (shares or -fraction).
    target = rng.choice([np.nan, np.nan, np.nan, 1.0, -1.0, 0.0, 0.5], size=n)
    sizes = None
    if seed % 3 == 0:
        sizes = np.where(rng.random(n) < 0.5, np.nan, rng.choice([5.0, -0.3, -1.0], size=n))
    costs = Costs(*(rng.choice([0.0, 1.0, 5.0], size=4)))
    kw = dict(con_id=7, capital=float(rng.choice([1_000.0, 100_000.0, 10.0])), costs=costs, sizes=sizes,
              quantity=None if seed % 2 else 10.0, fraction=float(rng.choice([1.0, 0.5])))
    eq, trades, pos, notional = simulate(df, target, **kw)
    ref_eq, ref_trades, ref_pos, ref_notional = reference_simulate(df, target, **kw)
    assert np.array_equal(eq, ref_eq)  # bit-identical, not approximately equal
    assert np.array_equal(pos, ref_pos)
    assert trades == ref_trades
    assert notional == ref_notional


def test_metrics_fast_paths_equal_pandas_forms():
    from trader.simulation.metrics import _longest_run, _median_spacing_seconds

    rng = np.random.default_rng(3)
    for unit in ("ns", "us", "s"):
        for _ in range(100):
            stamps = np.sort(rng.integers(0, 10**12, size=int(rng.integers(2, 20))))
            index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ms", utc=True)).as_unit(unit)
            expected = float(pd.Series(index).diff().dropna().median() / pd.Timedelta(seconds=1))
            assert _median_spacing_seconds(index) == expected
    from trader.simulation.metrics import _median_bars_per_date

    for _ in range(100):  # bars per New York date: int64 wall-clock days vs grouping by `.date`
        stamps = np.sort(rng.integers(-10**11, 4 * 10**12, size=int(rng.integers(1, 300))))
        index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ms", utc=True)).tz_convert(
            str(rng.choice(["UTC", "Asia/Tokyo", "America/New_York"])))
        for idx in (index, index.tz_localize(None)):
            ny = idx.tz_convert("America/New_York") if idx.tz is not None else idx
            assert _median_bars_per_date(idx) == float(np.median(pd.Series(1, index=ny).groupby(ny.date).size()))
    for _ in range(200):
        mask = rng.random(int(rng.integers(0, 50))) < 0.6
        best = run = 0
        for under in mask:
            run = run + 1 if under else 0
            best = max(best, run)
        assert _longest_run(mask) == best
