"""Ranking a sweep's runs by the Deflated Sharpe without decoding stored equity curves and without scipy.

Each run's per-period return moments (`moments`: count, per-period Sharpe, skew, excess kurtosis) are computed
where the run ran (the sweep worker) and stored with it (``backtest_runs.moments``), so the leaderboard reads a
few numbers per run instead of decoding thousands of equity values, and the normal quantiles come from the
standard library (`statistics.NormalDist`) rather than importing scipy in the CLI (~0.9 s). The numbers are the
same as `stats.deflated_sharpe` run by run (tests/simulation/test_sweep.py checks it).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

if TYPE_CHECKING:
    from trader.data.store import DuckStore

_NORMAL = NormalDist()
_EULER_GAMMA = 0.5772156649  # as trader.simulation.stats.expected_max_sharpe


def period_returns(capital: float, values: list[float] | np.ndarray) -> np.ndarray:
    """Per-bar returns of an equity curve, bar 0 against the starting capital (as compute_metrics does)."""
    curve = np.concatenate(([capital], np.asarray(values, float)))
    return np.diff(curve) / curve[:-1]


def skew_kurtosis(r: np.ndarray) -> tuple[float | None, float | None]:
    """Sample skewness and excess kurtosis (scipy.stats' biased defaults, in numpy). None when the returns do not
    vary or are too few."""
    if len(r) < 4:
        return None, None
    d = r - r.mean()
    d2 = d * d
    m2 = float(np.mean(d2))
    if m2 <= 0:
        return None, None
    # Products, not `d ** 3` / `d ** 4` (a general pow per value cost ~30x as much); the same up to rounding.
    return float(np.mean(d2 * d)) / m2 ** 1.5, float(np.mean(d2 * d2)) / m2 ** 2 - 3.0


def moments(r: np.ndarray) -> dict[str, Any]:
    """What ranking needs of one run's per-period returns: ``n``, per-period Sharpe ``sr`` (None when the returns
    do not vary), ``skew`` and excess kurtosis ``kurt`` (None when undefined)."""
    n = len(r)
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    skew, kurt = skew_kurtosis(r)
    return {"n": n, "sr": float(r.mean()) / sd if sd > 0 else None, "skew": skew, "kurt": kurt}


def expected_max_sharpe(trial_sharpes: list[float]) -> float:
    """The Sharpe expected from the best of N trials of pure noise (0 with fewer than 2 trials)."""
    n_trials = len(trial_sharpes)
    if n_trials < 2:
        return 0.0
    var = float(np.var(trial_sharpes, ddof=1))
    return math.sqrt(var) * ((1 - _EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n_trials)
                             + _EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (n_trials * math.e)))


def psr(m: dict[str, Any], benchmark: float) -> float:
    """Probabilistic Sharpe of one run's `moments` against `benchmark` (biased skew, non-excess kurtosis)."""
    if m["n"] < 3 or m["sr"] is None:
        return 0.5
    sr, g3, g4 = m["sr"], (m["skew"] or 0.0), (m["kurt"] or 0.0) + 3.0
    z = (sr - benchmark) * math.sqrt(m["n"] - 1) / math.sqrt(max(1e-12, 1 - g3 * sr + (g4 - 1) / 4 * sr * sr))
    return _NORMAL.cdf(z)


def deflated_sharpes(ms: list[dict[str, Any]]) -> list[float]:
    """Deflated Sharpe of each run of one job (its `moments`), the trials being every run of that job."""
    benchmark = expected_max_sharpe([m["sr"] or 0.0 for m in ms])
    return [psr(m, benchmark) for m in ms]


def leaderboard_rows(store: DuckStore, sweep_id: str) -> list[dict[str, Any]]:
    """Every run of a stored sweep as a leaderboard row (unranked fields: id, job, params, score, Sharpe, DSR
    within its job, return, drawdown, trades, profit factor, skew, excess kurtosis, provenance, execution), best
    score first."""
    # Runs that carry their return moments are ranked from them; older ones decode their equity curve. Plain
    # tuples and msgspec (a DataFrame of the rows and json.loads per field cost more than the ranking).
    recs = store.execute("SELECT id, sweep_job, class_name, params, metrics, score, capital, provenance, execution, "
                         "moments, CASE WHEN moments IS NULL THEN equity END, "
                         "CASE WHEN moments IS NULL THEN equity_v END, CASE WHEN moments IS NULL THEN equity_seg END "
                         "FROM backtest_runs WHERE sweep_id = ?", [sweep_id], write=False)
    closes = dict(store.execute("SELECT sweep_job, close FROM sweep_equity_index WHERE sweep_id = ?", [sweep_id],
                                write=False)) if any(r[9] is None for r in recs) else {}
    by_job: dict[str, list[tuple]] = {}
    for r in recs:
        by_job.setdefault(r[1], []).append(r)
    from trader.simulation.store import equity_values

    decode = msgspec.json.decode
    rows: list[dict[str, Any]] = []
    for group in by_job.values():
        ms = [decode(r[9]) if isinstance(r[9], str) else
              moments(period_returns(float(r[6]), equity_values(r[10], r[11], r[12], closes.get(r[1]))))
              for r in group]
        dsrs = deflated_sharpes(ms)
        for r, mo, dsr in zip(group, ms, dsrs, strict=True):
            m = decode(r[4])
            rows.append({
                "id": r[0], "job": r[1], "class_name": r[2], "params": decode(r[3]),
                "score": float(r[5]), "sharpe": m.get("sharpe"), "dsr": float(dsr),
                "total_return": m.get("total_return"), "max_drawdown": m.get("max_drawdown"),
                "trade_count": m.get("trade_count"), "profit_factor": m.get("profit_factor"),
                "skew": mo["skew"], "excess_kurtosis": mo["kurt"],
                "provenance": r[7] if isinstance(r[7], str) else "unknown",
                "execution": r[8] if isinstance(r[8], str) else "unknown"})
    rows.sort(key=lambda x: (-x["score"], x["id"]))
    return rows
