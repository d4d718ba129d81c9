"""Statistical confidence for a backtest: is the edge distinguishable from noise?

Each test returns a `TestResult` whose `meaning` says in one line what the number implies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as st


@dataclass(frozen=True, slots=True)
class TestResult:
    """One statistical test: its value, p-value or interval, and a one-line meaning."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    passed: bool = False
    meaning: str = ""


def probabilistic_sharpe(returns: np.ndarray, benchmark_sr: float = 0.0) -> float:
    """Bailey & López de Prado PSR: P(true per-period Sharpe > benchmark) given skew and kurtosis."""
    r = np.asarray(returns, float)
    n = len(r)
    if n < 3 or r.std(ddof=1) == 0:
        return 0.5
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = st.skew(r), st.kurtosis(r, fisher=False)
    denom = math.sqrt(max(1e-12, 1 - g3 * sr + (g4 - 1) / 4 * sr * sr))
    return float(st.norm.cdf((sr - benchmark_sr) * math.sqrt(n - 1) / denom))


def expected_max_sharpe(trial_sharpes: list[float]) -> float:
    """The Sharpe expected from the best of N trials of pure noise (0 with fewer than 2 trials)."""
    n_trials = len(trial_sharpes)
    if n_trials < 2:
        return 0.0
    var = float(np.var(trial_sharpes, ddof=1))
    gamma = 0.5772156649
    return math.sqrt(var) * ((1 - gamma) * st.norm.ppf(1 - 1 / n_trials)
                             + gamma * st.norm.ppf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(returns: np.ndarray, trial_sharpes: list[float]) -> float:
    """Deflated Sharpe Ratio: PSR against the Sharpe expected from the best of N trials of pure noise."""
    return probabilistic_sharpe(returns, expected_max_sharpe(trial_sharpes))


def max_losing_streak(wins: np.ndarray) -> int:
    """Longest run of consecutive losing trades."""
    best = run = 0
    for w in wins:
        run = 0 if w else run + 1
        best = max(best, run)
    return best


def confidence_report(daily_returns: np.ndarray, trade_returns: np.ndarray, periods_per_year: float = 252.0,
                      trial_sharpes: list[float] | None = None, seed: int = 7,
                      n_boot: int = 2000) -> list[TestResult]:
    """PSR, t-test, bootstrap CIs (Sharpe and mean), skew/kurtosis fat-tail flag, Monte-Carlo losing streak
    and (with `trial_sharpes` from a sweep) the Deflated Sharpe Ratio."""
    r = np.asarray(daily_returns, float)
    tr = np.asarray(trade_returns, float)
    rng = np.random.default_rng(seed)
    out: list[TestResult] = []
    ann = math.sqrt(periods_per_year)

    psr = probabilistic_sharpe(r)
    out.append(TestResult("psr", psr, passed=psr >= 0.95, meaning=(
        f"{psr:.0%} probability the true Sharpe is above 0" + (" — edge credible at 95%" if psr >= 0.95
                                                                 else " — edge not distinguishable from noise at 95%"))))
    sample = tr if len(tr) >= 5 else r
    if len(sample) >= 3 and sample.std(ddof=1) > 0:
        t, p = st.ttest_1samp(sample, 0.0)
        p1 = float(p / 2 if t > 0 else 1 - p / 2)
    else:
        t, p1 = 0.0, 1.0
    out.append(TestResult("t_test", float(t), p_value=p1, passed=p1 < 0.05, meaning=(
        f"mean {'per-trade' if sample is tr else 'per-bar'} return > 0 " +
        ("significant at 95%" if p1 < 0.05 else f"not significant (p={p1:.2f})"))))
    if len(r) >= 10 and r.std() > 0:
        idx = rng.integers(0, len(r), size=(n_boot, len(r)))
        b = r[idx]
        sd = b.std(axis=1, ddof=1)
        sharpes = np.where(sd > 0, b.mean(axis=1) / np.where(sd > 0, sd, 1) * ann, 0.0)
        lo, hi = np.percentile(sharpes, [2.5, 97.5])
        out.append(TestResult("bootstrap_sharpe", float(r.mean() / r.std(ddof=1) * ann), float(lo), float(hi),
                              passed=lo > 0, meaning=f"95% CI for Sharpe [{lo:.2f}, {hi:.2f}]"
                              + (" excludes 0" if lo > 0 else " includes 0: edge uncertain")))
        means = b.mean(axis=1) * periods_per_year
        lo, hi = np.percentile(means, [2.5, 97.5])
        out.append(TestResult("bootstrap_mean", float(r.mean() * periods_per_year), float(lo), float(hi),
                              passed=lo > 0, meaning=f"95% CI for annualized mean return [{lo:.1%}, {hi:.1%}]"))
    skew = float(st.skew(r)) if len(r) > 2 else 0.0
    kurt = float(st.kurtosis(r)) if len(r) > 3 else 0.0
    fat = kurt > 3.0 or abs(skew) > 1.0
    out.append(TestResult("tails", kurt, p_value=None, passed=not fat, meaning=(
        f"skew {skew:.2f}, excess kurtosis {kurt:.2f}: " +
        ("fat tails — Sharpe understates risk" if fat else "tails close to normal"))))
    if len(tr) >= 5:
        wins = tr > 0
        observed = max_losing_streak(wins)
        sims = np.array([max_losing_streak(rng.permutation(wins)) for _ in range(500)])
        p = float((sims >= observed).mean())
        out.append(TestResult("losing_streak", float(observed), p_value=p, passed=p > 0.05, meaning=(
            f"longest losing streak {observed} trades; " +
            ("longer than chance suggests (regime risk)" if p <= 0.05 else "consistent with chance"))))
    if trial_sharpes:
        dsr = deflated_sharpe(r, trial_sharpes)
        out.append(TestResult("deflated_sharpe", dsr, passed=dsr >= 0.95, meaning=(
            f"{dsr:.0%} after correcting for {len(trial_sharpes)} trials" +
            (" — survives the multiple-testing haircut" if dsr >= 0.95 else " — likely a product of the search"))))
    return out
