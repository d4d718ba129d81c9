"""Options math (trader/tools/options.py) against an independent Black-Scholes (vollib), and the chain bound."""

from __future__ import annotations

import pytest

from trader.tools.options import black_scholes, greeks, implied_vol, strikes_near

analytical = pytest.importorskip("vollib.black_scholes.greeks.analytical")
vollib_bs = pytest.importorskip("vollib.black_scholes")

CASES = [(100.0, 100.0, 0.25, 0.2, "C", 0.04), (100.0, 110.0, 0.5, 0.3, "P", 0.04),
         (250.0, 200.0, 0.05, 0.45, "C", 0.0), (5000.0, 5200.0, 1.0, 0.15, "P", 0.02)]


@pytest.mark.parametrize(("s", "k", "t", "v", "r", "rate"), CASES)
def test_value_and_greeks_match_vollib(s, k, t, v, r, rate):
    flag = r.lower()
    g = greeks(s, k, t, v, r, rate)
    assert g.price == pytest.approx(vollib_bs.black_scholes(flag, s, k, t, rate, v), rel=1e-9, abs=1e-9)
    assert g.delta == pytest.approx(analytical.delta(flag, s, k, t, rate, v), abs=1e-9)
    assert g.gamma == pytest.approx(analytical.gamma(flag, s, k, t, rate, v), rel=1e-9)
    assert g.vega == pytest.approx(analytical.vega(flag, s, k, t, rate, v), rel=1e-9)  # per 1 % vol
    assert g.theta == pytest.approx(analytical.theta(flag, s, k, t, rate, v), rel=1e-9)  # per day


@pytest.mark.parametrize(("s", "k", "t", "v", "r", "rate"), CASES)
def test_implied_vol_recovers_the_volatility(s, k, t, v, r, rate):
    assert implied_vol(black_scholes(s, k, t, v, r, rate), s, k, t, r, rate) == pytest.approx(v, abs=1e-6)


def test_implied_vol_none_below_intrinsic_and_intrinsic_at_expiry():
    assert implied_vol(1.0, 120.0, 100.0, 0.5, "C") is None
    assert black_scholes(120.0, 100.0, 0.0, 0.2, "C") == 20.0 and black_scholes(90.0, 100.0, 0.0, 0.2, "P") == 10.0
    with pytest.raises(ValueError):
        greeks(100.0, 100.0, 0.0, 0.2, "C")


def test_strikes_near_is_bounded_and_centred():
    ladder = [float(k) for k in range(50, 151, 5)]
    picked = strikes_near(ladder, 101.0, limit=4)
    assert picked == [95.0, 100.0, 105.0, 110.0] or picked == [90.0, 95.0, 100.0, 105.0]
    assert strikes_near(ladder, 101.0, strike_min=120, strike_max=130) == [120.0, 125.0, 130.0]
    assert len(strikes_near(ladder, None)) == 20
