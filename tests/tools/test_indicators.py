"""Indicator glue (trader/tools/indicators.py) against values worked out by hand."""

from __future__ import annotations

import pytest

from trader.tools import indicators as ind


def test_ema_matches_the_recursion_by_hand():
    # span 3 → alpha 0.5, seeded with the first close: 1, 1.5, 2.25, 3.125, 4.0625
    assert ind.ema([1, 2, 3, 4, 5], 3) == pytest.approx(4.0625)
    assert ind.ema([1, 2], 3) is None  # fewer closes than the window


def test_sma_and_short_input():
    assert ind.sma([1, 2, 3, 4, 5], 3) == pytest.approx(4.0)
    assert ind.sma([1, 2], 3) is None


def test_rsi_extremes_and_wilder_recursion():
    assert ind.rsi([float(x) for x in range(1, 31)], 14) == pytest.approx(100.0)
    assert ind.rsi([float(x) for x in range(30, 0, -1)], 14) == pytest.approx(0.0)
    assert ind.rsi([1.0] * 10, 14) is None
    closes = [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28,
              46.28, 46.00, 46.03, 46.41, 46.22, 45.64]
    # Wilder smoothing (alpha = 1/14) of gains and losses, seeded with 0 at the first close (no change yet)
    alpha = 1 / 14
    diffs = [b - a for a, b in zip(closes, closes[1:], strict=False)]
    gain = loss = 0.0
    for d in diffs:
        gain = alpha * max(d, 0.0) + (1 - alpha) * gain
        loss = alpha * max(-d, 0.0) + (1 - alpha) * loss
    expected = 100 - 100 / (1 + gain / loss)
    assert ind.rsi(closes, 14) == pytest.approx(expected, rel=1e-9)
    assert 50 < expected < 60  # a gently rising series


def test_vwap_weights_typical_price_by_volume():
    highs, lows, closes, vols = [12, 22], [8, 18], [10, 20], [100, 300]
    # typical prices 10 and 20 → (10*100 + 20*300) / 400 = 17.5
    assert ind.vwap(highs, lows, closes, vols, 2) == pytest.approx(17.5)
    assert ind.vwap(highs, lows, closes, [0, 0], 2) is None


def test_relative_volume_and_pct():
    assert ind.relative_volume(3_000, [1_000, 2_000, 3_000], 20) == pytest.approx(1.5)
    assert ind.relative_volume(3_000, [2_000] * 30, 20) == pytest.approx(1.5)
    assert ind.relative_volume(None, [1_000]) is None
    assert ind.relative_volume(1_000, []) is None
    assert ind.pct(105, 100) == pytest.approx(5.0)
    assert ind.pct(105, 0) is None and ind.pct(None, 100) is None
