"""Position sizing: hand-computed values for each factor, clamp and cap; Kelly; ATR/ADV; hard-limit properties."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.config import PositionSizingConfig, TradingFiltersConfig
from trader.messaging.codec import packb, unpackb
from trader.trading.sizing import (
    CAP_ADV,
    CAP_MAX_VALUE,
    CAP_PCT_NLV,
    CLAMP_ATR_MAX,
    CLAMP_ATR_MIN,
    CLAMP_CONFIDENCE_FLOOR,
    CLAMP_MAX_POSITION,
    CLAMP_MIN_POSITION,
    NO_EDGE,
    NO_NLV,
    PENALTY_WIDE_SPREAD,
    SizingInputs,
    SizingResult,
    average_daily_volume,
    kelly_edge,
    size_position,
    spread_bps,
    true_range,
    wilder_atr,
    wilder_atr_series,
    win_loss_ratio_from_bracket,
)

CFG = PositionSizingConfig()  # base 5,000; risk 1.0; floor 0.3; ATR target 2%, adj [0.25, 1.5]; 2% ADV; 10% NLV
BIG = dict(nlv=1_000_000.0, adv_shares=10_000_000.0, bid=99.99, ask=100.01)


def cfg(**kw) -> PositionSizingConfig:
    return msgspec.structs.replace(CFG, **kw)


def test_issue_example_breakdown_exactly():
    # ATR% = 2 / 0.85 so the adjustment is 0.85; 5,000 × 1.0 × 0.70 × 0.85 = 2,975.
    r = size_position(SizingInputs(price=50.0, confidence=0.7, atr=50.0 * 0.02 / 0.85, **BIG), CFG)
    assert r.breakdown == "base $5,000 × 1.0 risk × 0.70 confidence × 0.85 ATR adj = $2,975"
    assert r.shares == 59  # 2,975 / 50 = 59.5 → rounded down
    assert r.usd == 2950.0
    assert r.clamps == ()
    assert r.describe() == r.breakdown + " → 59 shares ≈ $2,950"


def test_plain_formula():
    r = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, **BIG), CFG)
    assert r.atr_pct == pytest.approx(2.5)
    assert r.atr_adjustment == pytest.approx(0.8)  # 2.0 / 2.5
    assert r.confidence_scale == pytest.approx(0.6)
    assert r.formula_usd == pytest.approx(2400.0)  # 5,000 × 1 × 0.6 × 0.8
    assert r.shares == 24 and r.usd == pytest.approx(2400.0)


def test_risk_multiplier_in_breakdown():
    r = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, **BIG), cfg(risk_multiplier=1.25))
    assert r.formula_usd == pytest.approx(3000.0)
    assert "× 1.25 risk ×" in r.breakdown


def test_confidence_floor():
    r = size_position(SizingInputs(price=100.0, confidence=0.1, atr=2.0, **BIG), CFG)
    assert r.confidence_scale == pytest.approx(0.3)
    assert CLAMP_CONFIDENCE_FLOOR in r.clamps
    assert r.formula_usd == pytest.approx(1500.0)


def test_missing_confidence_uses_default_with_warning():
    r = size_position(SizingInputs(price=100.0, atr=2.0, **BIG), CFG)
    assert r.confidence_scale == pytest.approx(0.5)
    assert any("confidence" in w for w in r.warnings)


def test_atr_adjustment_clamped_high_and_low():
    quiet = size_position(SizingInputs(price=100.0, confidence=1.0, atr=0.5, **BIG), CFG)  # raw 4.0
    assert quiet.atr_adjustment == pytest.approx(1.5) and CLAMP_ATR_MAX in quiet.clamps
    assert quiet.formula_usd == pytest.approx(7500.0)
    wild = size_position(SizingInputs(price=100.0, confidence=1.0, atr=10.0, **BIG), CFG)  # raw 0.2
    assert wild.atr_adjustment == pytest.approx(0.25) and CLAMP_ATR_MIN in wild.clamps
    assert wild.formula_usd == pytest.approx(1250.0)


def test_unknown_atr_is_neutral_with_warning():
    r = size_position(SizingInputs(price=100.0, confidence=1.0, **BIG), CFG)
    assert r.atr_adjustment == 1.0 and r.atr_pct is None
    assert any("ATR unknown" in w for w in r.warnings)


def test_min_position_clamp():
    # 5,000 × 0.3 × 0.25 = 375 → raised to the 500 minimum → 50 shares at $10.
    r = size_position(SizingInputs(price=10.0, confidence=0.3, atr=1.0, **BIG), CFG)
    assert r.formula_usd == pytest.approx(375.0)
    assert CLAMP_MIN_POSITION in r.clamps
    assert r.shares == 50 and r.usd == pytest.approx(500.0)
    assert "min position $500" in r.describe()


def test_max_position_clamp():
    r = size_position(SizingInputs(price=100.0, confidence=1.0, atr=2.0, **BIG), cfg(base_position_usd=30_000.0))
    assert r.formula_usd == pytest.approx(30_000.0)
    assert CLAMP_MAX_POSITION in r.clamps
    assert r.shares == 250


def test_adv_cap():
    # 2% of 1,000 shares a day = 20 shares = $2,000 < $2,400.
    r = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, nlv=1e6, adv_shares=1000.0), CFG)
    assert CAP_ADV in r.clamps
    assert r.adv_cap_usd == pytest.approx(2000.0)
    assert r.shares == 20
    assert "2% ADV cap $2,000" in r.describe()


def test_wide_spread_penalty():
    # 99.5 / 100.5: spread 1.00 on a 100 mid = 100 bps > 50 → × 0.5 → $1,200.
    r = size_position(
        SizingInputs(price=100.0, confidence=0.6, atr=2.5, nlv=1e6, adv_shares=1e7, bid=99.5, ask=100.5), CFG
    )
    assert r.spread_bps == pytest.approx(100.0)
    assert PENALTY_WIDE_SPREAD in r.clamps and r.spread_penalty == 0.5
    assert r.shares == 12
    narrow = size_position(
        SizingInputs(price=100.0, confidence=0.6, atr=2.5, nlv=1e6, adv_shares=1e7, bid=99.9, ask=100.1), CFG
    )
    assert narrow.spread_bps == pytest.approx(20.0) and narrow.spread_penalty == 1.0 and narrow.shares == 24


def test_pct_of_nlv_cap():
    r = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, nlv=20_000.0, adv_shares=1e7), CFG)
    assert CAP_PCT_NLV in r.clamps
    assert r.hard_cap_usd == pytest.approx(2000.0)
    assert r.shares == 20


def test_existing_position_counts_toward_hard_cap():
    r = size_position(
        SizingInputs(price=100.0, confidence=0.6, atr=2.5, existing_value_usd=24_000.0, **BIG), CFG
    )
    assert CAP_MAX_VALUE in r.clamps
    assert r.hard_cap_usd == pytest.approx(1000.0)
    assert r.shares == 10
    assert "less $24,000 held" in r.describe()


def test_risk_gate_limits_when_filters_given():
    filters = TradingFiltersConfig(max_position_value_usd=1500.0)
    r = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, **BIG), CFG, filters)
    assert CAP_MAX_VALUE in r.clamps and r.shares == 15
    pct = TradingFiltersConfig(max_position_pct_nlv=0.1)  # 0.1% of 1M = 1,000
    assert size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, **BIG), CFG, pct).shares == 10


def test_unknown_nlv_sizes_to_zero():
    r = size_position(SizingInputs(price=100.0, confidence=0.9, atr=2.0, adv_shares=1e7), CFG)
    assert r.shares == 0 and r.usd == 0.0 and NO_NLV in r.clamps


def test_rounds_down_to_whole_shares():
    r = size_position(SizingInputs(price=33.0, confidence=0.6, atr=0.825, **BIG), CFG)  # ATR% 2.5 → $2,400
    assert r.target_usd == pytest.approx(2400.0)
    assert r.shares == 72 and r.usd == pytest.approx(2376.0)


def test_kelly():
    assert kelly_edge(0.6, 2.0) == pytest.approx(0.4)  # 0.6 − 0.4 / 2
    assert kelly_edge(0.5, 1.0) == pytest.approx(0.0)
    assert win_loss_ratio_from_bracket(100.0, 110.0, 95.0) == pytest.approx(2.0)
    assert win_loss_ratio_from_bracket(100.0, 110.0, 100.0) is None
    kcfg = cfg(method="kelly")
    # 0.25 × 0.4 × 100,000 = 10,000 = the 10% NLV cap exactly → 100 shares.
    r = size_position(SizingInputs(price=100.0, confidence=0.6, win_loss_ratio=2.0, nlv=100_000.0,
                                   adv_shares=1e7), kcfg)
    assert r.method == "kelly" and r.kelly_edge == pytest.approx(0.4)
    assert r.formula_usd == pytest.approx(10_000.0)
    assert r.shares == 100
    assert r.breakdown.startswith("kelly 0.25 × 0.400 edge (p 0.60, b 2.00) × $100,000 NLV")
    # An explicit win probability beats the confidence.
    r2 = size_position(SizingInputs(price=100.0, confidence=0.9, win_prob=0.55, win_loss_ratio=1.5,
                                    nlv=100_000.0, adv_shares=1e7), kcfg)
    assert r2.kelly_edge == pytest.approx(0.55 - 0.45 / 1.5)
    assert r2.shares == 62  # edge 0.55 − 0.45 / 1.5 = 0.25; 0.25 × 0.25 × 100,000 = 6,250 → 62 shares


def test_kelly_no_edge_and_fallback():
    kcfg = cfg(method="kelly")
    none = size_position(SizingInputs(price=100.0, confidence=0.3, win_loss_ratio=1.0, **BIG), kcfg)
    assert none.shares == 0 and NO_EDGE in none.clamps and none.kelly_edge == pytest.approx(-0.4)
    fallback = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, **BIG), kcfg)
    assert fallback.method == "atr" and fallback.shares == 24
    assert any("kelly needs a win/loss ratio" in w for w in fallback.warnings)
    with pytest.raises(ValueError):
        kelly_edge(1.2, 2.0)


def test_spread_bps_edge_cases():
    assert spread_bps(None, 10.0) is None
    assert spread_bps(10.1, 10.0) is None  # crossed
    assert spread_bps(0.0, 10.0) is None
    assert spread_bps(9.95, 10.05) == pytest.approx(100.0)


def test_bad_price_refused():
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            SizingInputs(price=bad)


def test_result_round_trips():
    r = size_position(SizingInputs(price=100.0, confidence=0.6, atr=2.5, nlv=1e6, adv_shares=1000.0), CFG)
    assert SizingResult.from_dict(r.to_dict()) == r
    assert unpackb(packb(r)) == r


# --------------------------------------------------------------------------- ATR / ADV
H = [10.0, 11.0, 12.0, 11.2, 13.0]
L = [9.0, 10.0, 10.5, 10.8, 11.5]
C = [9.5, 10.5, 11.5, 11.0, 12.5]


def test_true_range_by_hand():
    # bar 1: max(1.0, |11 − 9.5|, |10 − 9.5|) = 1.5; bar 2: max(1.5, 1.5, 0) = 1.5;
    # bar 3: max(0.4, |11.2 − 11.5|, |10.8 − 11.5|) = 0.7; bar 4: max(1.5, |13 − 11|, |11.5 − 11|) = 2.0
    assert true_range(H, L, C).tolist() == pytest.approx([1.5, 1.5, 0.7, 2.0])


def test_wilder_atr_by_hand():
    # seed = (1.5 + 1.5 + 0.7) / 3 = 1.23333; next = (1.23333 × 2 + 2.0) / 3 = 1.48889
    series = wilder_atr_series(H, L, C, period=3)
    assert series.tolist() == pytest.approx([3.7 / 3, (3.7 / 3 * 2 + 2.0) / 3])
    assert wilder_atr(H, L, C, period=3) == pytest.approx(1.488888889)
    assert wilder_atr(H, L, C, period=4) == pytest.approx(5.7 / 4)
    assert wilder_atr(H, L, C, period=5) is None  # needs period + 1 bars
    with pytest.raises(ValueError):
        wilder_atr(H, L[:-1], C, period=3)


def test_average_daily_volume():
    assert average_daily_volume([100, 200, math.nan, 300], window=3) == pytest.approx(250.0)
    assert average_daily_volume([100, 200, 300, 400], window=20) == pytest.approx(250.0)
    assert average_daily_volume([], window=20) is None


# --------------------------------------------------------------------------- properties
finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    price=st.floats(0.01, 5000, **finite),
    confidence=st.none() | st.floats(-1, 2, **finite),
    atr=st.none() | st.floats(0, 500, **finite),
    adv=st.none() | st.floats(0, 1e8, **finite),
    nlv=st.none() | st.floats(-1e5, 1e8, **finite),
    spread=st.none() | st.floats(0, 0.5, **finite),
    held=st.floats(0, 1e6, **finite),
    base=st.floats(0, 1e6, **finite),
    method=st.sampled_from(["atr", "kelly"]),
    ratio=st.none() | st.floats(0.01, 10, **finite),
)
def test_never_negative_never_above_hard_limits(price, confidence, atr, adv, nlv, spread, held, base, method, ratio):
    c = cfg(base_position_usd=base, method=method)
    filters = TradingFiltersConfig(max_position_value_usd=40_000.0, max_position_pct_nlv=8.0)
    bid = ask = None
    if spread is not None:
        bid, ask = price * (1 - spread / 2), price * (1 + spread / 2)
    r = size_position(
        SizingInputs(price=price, confidence=confidence, atr=atr, adv_shares=adv, nlv=nlv, bid=bid, ask=ask,
                     existing_value_usd=held, win_loss_ratio=ratio),
        c, filters,
    )
    assert r.shares >= 0 and r.usd >= 0
    assert r.usd == pytest.approx(r.shares * price, abs=0.01)
    if nlv is None or nlv <= 0:
        assert r.shares == 0
        return
    value = r.shares * price  # the limits bind the shares bought; r.usd is that value rounded to cents
    tol = 1e-6 * max(1.0, value)
    assert r.usd <= r.target_usd + 0.01
    assert value + held <= max(held, c.max_position_usd) + tol
    assert value + held <= max(held, filters.max_position_value_usd) + tol
    assert value + held <= max(held, min(c.max_position_pct_nlv, filters.max_position_pct_nlv) / 100 * nlv) + tol
    if adv is not None:
        assert r.shares <= c.liquidity.max_pct_adv / 100 * adv + 1e-9
