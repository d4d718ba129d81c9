"""Backtest metrics (>= 12) from an equity curve and a trade list."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from trader.simulation.backtester import BacktestResult


# Below this span the bars' own rate is dominated by nights and weekends: use the weekday-session convention.
MIN_SPAN_DAYS_FOR_RATE = 28.0
YEAR_SECONDS = 365.25 * 86400


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the bars' actual frequency: bars / span in years when they span at least 28 days
    (a 7-day market gets ~365 daily bars a year, a weekday one ~252); over a shorter span, 252 sessions a year
    × the median bars per New York date (daily or slower: 252, or one bar per spacing beyond 1.5 days)."""
    return annualization(index)[0]


# The last few indexes' annualisation: every run of a sweep job has the same bars (a new index object each run).
_ANNUALIZATION: dict[tuple, tuple[np.ndarray, tuple[float, str]]] = {}


def annualization(index: pd.DatetimeIndex) -> tuple[float, str]:
    """`periods_per_year` and a sentence saying how it was derived (results state their annualisation)."""
    if isinstance(index, pd.DatetimeIndex) and len(index) >= 2:
        stamps = index.asi8
        key = (len(stamps), str(index.dtype), int(stamps[0]), int(stamps[-1]))
        hit = _ANNUALIZATION.get(key)
        if hit is not None and np.array_equal(hit[0], stamps):
            return hit[1]
        out = _annualization(index)
        if len(_ANNUALIZATION) >= 8:
            _ANNUALIZATION.pop(next(iter(_ANNUALIZATION)))
        _ANNUALIZATION[key] = (stamps.copy(), out)
        return out
    return _annualization(index)


def _annualization(index: pd.DatetimeIndex) -> tuple[float, str]:
    n = len(index)
    if n < 2:
        return 252.0, "252 periods/year (too few bars to measure their frequency)"
    secs = _median_spacing_seconds(index)
    span = float((index[-1] - index[0]) / pd.Timedelta(seconds=1)) + secs
    if span >= MIN_SPAN_DAYS_FOR_RATE * 86400:
        ppy = n * YEAR_SECONDS / span
        return ppy, f"{ppy:.1f} bars/year: {n} bars over {span / YEAR_SECONDS:.2f} years (the bars' own frequency)"
    if secs >= 86400 * 0.9:
        if secs > 86400 * 1.5:
            ppy = YEAR_SECONDS / secs
            return ppy, f"{ppy:.1f} bars/year: one bar every {secs / 86400:.1f} days"
        return 252.0, "252 bars/year: daily bars, 252 sessions a year (span under 28 days)"
    per_day = _median_bars_per_date(index)
    ppy = 252.0 * per_day
    return ppy, (f"{ppy:.0f} bars/year: 252 sessions × {per_day:.0f} bars per session (median per New York date; "
                 "span under 28 days)")


def _median_bars_per_date(index: pd.DatetimeIndex) -> float:
    """Median number of bars per New York calendar date (wall-clock date of tz-aware stamps), counted from the
    int64 wall-clock stamps: the same counts as grouping by `.date`, without boxing a date per bar."""
    ny = index.tz_convert("America/New_York").tz_localize(None) if index.tz is not None else index
    if not isinstance(ny, pd.DatetimeIndex) or ny.hasnans:
        return float(np.median(pd.Series(1, index=ny).groupby(ny.date).size().to_numpy()))
    days = np.sort(ny.as_unit("ns").asi8 // 86_400_000_000_000)
    starts = np.flatnonzero(np.concatenate(([True], days[1:] != days[:-1])))
    return float(np.median(np.diff(np.append(starts, len(days)))))


def _median_spacing_seconds(index: pd.DatetimeIndex) -> float:
    """Median bar spacing in seconds. Numpy on the int64 stamps (sweeps call this per run); falls back to
    pandas when the median falls between two integer ticks, where pandas' own rounding applies."""
    if isinstance(index, pd.DatetimeIndex) and not index.hasnans:
        med = float(np.median(np.diff(index.asi8)))
        if med.is_integer():
            return float(pd.Timedelta(int(med), unit=index.unit) / pd.Timedelta(seconds=1))
    return float(pd.Series(index).diff().dropna().median() / pd.Timedelta(seconds=1))


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True values: the widest gap between two False values (or the ends)."""
    breaks = np.flatnonzero(~mask)
    return int(np.diff(np.concatenate(([-1], breaks, [len(mask)]))).max() - 1)


def trade_stats(pnls: np.ndarray, trade_rets: np.ndarray) -> dict[str, float]:
    """The per-trade metrics of one run from its closed trades' P&L and returns (shared by ``compute_metrics`` and
    the grid pass, so both store the same values)."""
    n = len(pnls)
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    n_win, n_loss = len(wins), len(losses)
    # A mean is its sum (numpy's) over the count: the same double as ndarray.mean() without its Python-level
    # wrapper (a sweep computes these for every run: ~1,000 per 1,000-run grid pass).
    win_sum = float(wins.sum()) if n_win else 0.0
    loss_sum = float(losses.sum()) if n_loss else 0.0
    return {
        "profit_factor": win_sum / -loss_sum if n_loss and loss_sum < 0 else (math.inf if n_win else 0.0),
        "win_rate": n_win / n if n else 0.0,
        "expectancy_bps": float(trade_rets.sum()) / len(trade_rets) * 1e4 if len(trade_rets) else 0.0,
        "avg_win": win_sum / n_win if n_win else 0.0,
        "avg_loss": loss_sum / n_loss if n_loss else 0.0,
        "trade_count": float(n),
    }


def compute_metrics(result: BacktestResult) -> dict[str, float]:
    """Total return, CAGR, annualized volatility, Sharpe, Sortino, Calmar, max drawdown and its duration
    (bars), profit factor, win rate, expectancy (bps per trade), average win/loss, trade count, time in
    market, turnover, and the `periods_per_year` every annualised figure used (`annualization`)."""
    eq = result.equity.to_numpy(float)
    ppy = periods_per_year(result.equity.index)
    # Returns include bar 0 against the starting capital (as vectorbt does), so the two Sharpes agree.
    curve = np.concatenate(([result.initial_capital], eq))
    rets = np.diff(curve) / curve[:-1]
    total_return = eq[-1] / result.initial_capital - 1.0
    years = len(eq) / ppy
    cagr = (eq[-1] / result.initial_capital) ** (1 / years) - 1.0 if years > 0 and eq[-1] > 0 else -1.0
    std = float(rets.std(ddof=1)) if len(rets) > 1 else 0.0
    vol = std * math.sqrt(ppy)
    sharpe = float(rets.mean()) / std * math.sqrt(ppy) if std > 0 else 0.0
    downside = rets[rets < 0]
    dstd = float(np.sqrt(np.mean(np.minimum(rets, 0) ** 2))) if len(rets) else 0.0
    sortino = float(rets.mean()) / dstd * math.sqrt(ppy) if dstd > 0 and len(downside) else 0.0
    peak = np.maximum.accumulate(eq)
    dd = eq / peak - 1.0
    max_dd = float(-dd.min()) if len(dd) else 0.0
    dd_dur = _longest_run(dd < 0)
    return {
        "total_return": float(total_return),
        "cagr": float(cagr),
        "annual_volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": float(cagr / max_dd) if max_dd > 0 else 0.0,
        "max_drawdown": max_dd,
        "max_drawdown_bars": float(dd_dur),
        **trade_stats(result.trade_column("pnl"), result.trade_column("return_pct")),
        "time_in_market": float(result.exposure.mean()) if len(result.exposure) else 0.0,
        "turnover": float(result.turnover),
        "final_equity": float(eq[-1]),
        "periods_per_year": float(ppy),
    }
