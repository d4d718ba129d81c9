"""Backtest metrics (>= 12) from an equity curve and a trade list."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from trader.simulation.backtester import BacktestResult


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the median bar spacing: 252 for daily or slower, else 252 * bars per 6.5h day."""
    if len(index) < 2:
        return 252.0
    secs = _median_spacing_seconds(index)
    if secs >= 86400 * 0.9:
        return 365.25 * 86400 / secs if secs > 86400 * 1.5 else 252.0
    return 252.0 * 6.5 * 3600 / secs


def _median_spacing_seconds(index: pd.DatetimeIndex) -> float:
    """Median bar spacing in seconds. Numpy on the int64 stamps (sweeps call this per run); falls back to
    pandas when the median falls between two integer ticks, where pandas' own rounding applies."""
    if isinstance(index, pd.DatetimeIndex) and not index.hasnans:
        med = float(np.median(np.diff(index.asi8)))
        if med.is_integer():
            return float(pd.Timedelta(int(med), unit=index.unit) / pd.Timedelta(seconds=1))
    return float(pd.Series(index).diff().dropna().median() / pd.Timedelta(seconds=1))


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True values."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def compute_metrics(result: BacktestResult) -> dict[str, float]:
    """Total return, CAGR, annualized volatility, Sharpe, Sortino, Calmar, max drawdown and its duration
    (bars), profit factor, win rate, expectancy (bps per trade), average win/loss, trade count, time in
    market and turnover."""
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
    pnls = np.array([t.pnl for t in result.trades], dtype=float)
    trade_rets = np.array([t.return_pct for t in result.trades], dtype=float)
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    return {
        "total_return": float(total_return),
        "cagr": float(cagr),
        "annual_volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": float(cagr / max_dd) if max_dd > 0 else 0.0,
        "max_drawdown": max_dd,
        "max_drawdown_bars": float(dd_dur),
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) and losses.sum() < 0 else
        (math.inf if len(wins) else 0.0),
        "win_rate": float(len(wins) / len(pnls)) if len(pnls) else 0.0,
        "expectancy_bps": float(trade_rets.mean() * 1e4) if len(trade_rets) else 0.0,
        "avg_win": float(wins.mean()) if len(wins) else 0.0,
        "avg_loss": float(losses.mean()) if len(losses) else 0.0,
        "trade_count": float(len(pnls)),
        "time_in_market": float(result.exposure.mean()) if len(result.exposure) else 0.0,
        "turnover": float(result.turnover),
        "final_equity": float(eq[-1]),
    }
