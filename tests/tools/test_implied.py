"""Breeden–Litzenberger implied distribution (issue 17): from a Black-Scholes chain it integrates to 1, its mean
is the forward, and with a flat volatility its percentiles are the lognormal's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import lognorm

from trader.tools.implied import forward_and_discount, implied_distribution
from trader.tools.options import black_scholes


def _chain(spot=100.0, rate=0.04, years=0.5, vol=lambda k: 0.25, step=2.5, span=0.4):
    strikes = np.arange(spot * (1 - span), spot * (1 + span) + 1e-9, step)
    calls = [black_scholes(spot, k, years, vol(k), "C", rate) for k in strikes]
    puts = [black_scholes(spot, k, years, vol(k), "P", rate) for k in strikes]
    return strikes, calls, puts


def test_parity_gives_the_forward_and_discount():
    k, c, p = _chain()
    f, d = forward_and_discount(k, c, p)
    assert f == pytest.approx(100 * math.exp(0.04 * 0.5), rel=1e-9) and d == pytest.approx(math.exp(-0.02))


def test_flat_volatility_gives_the_lognormal():
    k, c, p = _chain()
    dist = implied_distribution(k, c, p, 0.5, levels=(90.0, 110.0))
    forward = 100 * math.exp(0.02)
    assert dist.mass == pytest.approx(1.0, abs=2e-3)
    assert dist.mean == pytest.approx(forward, rel=1e-3)
    s = 0.25 * math.sqrt(0.5)
    ref = lognorm(s, scale=forward * math.exp(-0.5 * s * s))
    assert dist.percentiles[50] == pytest.approx(ref.median(), rel=2e-3)
    assert dist.percentiles[5] == pytest.approx(ref.ppf(0.05), rel=5e-3)
    assert dist.prob_below[90.0] == pytest.approx(ref.cdf(90.0), abs=5e-3)
    assert dist.prob_above[110.0] == pytest.approx(1 - ref.cdf(110.0), abs=5e-3)


def test_a_smile_still_integrates_to_one_around_the_forward():
    k, c, p = _chain(vol=lambda k: 0.22 + 0.4 * (math.log(k / 100.0)) ** 2 - 0.1 * math.log(k / 100.0))
    dist = implied_distribution(k, c, p, 0.5)
    assert dist.mass == pytest.approx(1.0, abs=1e-2)
    assert dist.mean == pytest.approx(100 * math.exp(0.02), rel=3e-3)
    assert dist.percentiles[5] < dist.percentiles[50] < dist.percentiles[95]


def test_too_few_strikes_is_an_error():
    k, c, p = _chain(step=30.0)
    with pytest.raises(ValueError):
        implied_distribution(k, c, p, 0.5)
