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
