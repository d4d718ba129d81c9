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
from typing import Any

import numpy as np

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
