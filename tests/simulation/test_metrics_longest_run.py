"""`metrics._longest_run` (the max drawdown duration in bars) against a plain loop on random masks, empty included."""
from __future__ import annotations

import numpy as np

from trader.simulation.metrics import _longest_run


def _reference(mask) -> int:
    best = run = 0
    for x in mask:
        run = run + 1 if x else 0
        best = max(best, run)
    return best


def test_longest_run_of_true_values():
    rng = np.random.default_rng(3)
    for _ in range(500):
        mask = rng.random(int(rng.integers(0, 40))) < rng.random()
        assert _longest_run(mask) == _reference(mask)
    assert _longest_run(np.ones(7, dtype=bool)) == 7 and _longest_run(np.zeros(7, dtype=bool)) == 0


def test_trade_stats_means_are_numpys():
    """`trade_stats` takes each mean as numpy's sum over the count: the same doubles as ndarray.mean() (pairwise
    summation past 8 and 128 values included)."""
    from trader.simulation.metrics import trade_stats

    rng = np.random.default_rng(11)
    for n in (0, 1, 2, 7, 8, 9, 50, 128, 129, 300, 1000):
        pnls = rng.normal(0, 100, n) * rng.choice([1.0, 1e-3, 1e5])
        rets = rng.normal(0, 0.02, n)
        wins, losses = pnls[pnls > 0], pnls[pnls < 0]
        got = trade_stats(pnls, rets)
        assert got["avg_win"] == (float(wins.mean()) if len(wins) else 0.0)
        assert got["avg_loss"] == (float(losses.mean()) if len(losses) else 0.0)
        assert got["expectancy_bps"] == (float(rets.mean() * 1e4) if n else 0.0)
        assert got["win_rate"] == (len(wins) / n if n else 0.0)
        assert got["trade_count"] == float(n)
        want_pf = float(wins.sum() / -losses.sum()) if len(losses) and losses.sum() < 0 else \
            (float("inf") if len(wins) else 0.0)
        assert got["profit_factor"] == want_pf
    assert trade_stats(np.array([5.0, 1.0]), np.array([0.1, 0.2]))["profit_factor"] == float("inf")
