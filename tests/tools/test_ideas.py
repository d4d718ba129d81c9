"""Idea scanner core: metrics on hand-built bars, each preset's filters/score/label, ranking and limits."""

from __future__ import annotations

import pytest

from trader.tools.ideas import MarketRow, Metrics, compute_metrics, scan_rows
from trader.tools.presets import PRESETS, Filters, Preset, preset, ramp

FIELDS = Metrics.__slots__


def M(**kw) -> Metrics:
    values = dict.fromkeys(FIELDS)
    values["symbol"] = "X"
    values.update(kw)
    return Metrics(**values)


def test_metrics_from_hand_built_bars():
    # 60 flat sessions at 100 (volume 1M), then today: open 104, high 108, low 103, last 106, volume 2.5M
    row = MarketRow("X", last=106, prev_close=100, open=104, high=108, low=103, volume=2_500_000,
                    closes=(100.0,) * 60, highs=(101.0,) * 60, lows=(99.0,) * 60, volumes=(1e6,) * 60)
    m = compute_metrics(row)
    assert m.change_pct == pytest.approx(6.0) and m.gap_pct == pytest.approx(4.0)
    assert m.range_pct == pytest.approx(5.0) and m.rvol == pytest.approx(2.5)
    assert m.sma20 == pytest.approx((19 * 100 + 106) / 20) and m.sma50 == pytest.approx((49 * 100 + 106) / 50)
    assert m.dist_sma20_pct == pytest.approx((106 / m.sma20 - 1) * 100)
    assert m.vwap == pytest.approx((108 + 103 + 106) / 3)  # no VWAP from the source: typical price
    assert m.rsi == pytest.approx(100.0)  # the only move is up
    assert compute_metrics(MarketRow("X", 106, 100, vwap=105.5, high=108, low=103)).vwap == 105.5
    short = compute_metrics(MarketRow("Y", last=10, prev_close=9.5, closes=(9.0, 9.5)))
    assert short.rsi is None and short.sma20 is None and short.rvol is None


def test_ramp():
    assert ramp(None, 0, 10, 5) == 0 and ramp(-1, 0, 10, 5) == 0 and ramp(20, 0, 10, 5) == 5
    assert ramp(4, 0, 10, 5) == pytest.approx(2.0)


def test_momentum_filters_score_and_label():
    p = preset("momentum")
    m = M(price=50, volume=1e6, change_pct=6, rvol=2, rsi=65, ema9=48)
    assert p.filters.reject_reason(m) is None
    score, parts = p.score(m)
    assert parts == {"change": 17.5, "rvol": 12.5, "rsi": 20.0, "above_ema9": 20.0}
    assert score == 70.0 and p.label(m, score) == "BUY"
    weak = M(price=50, volume=1e6, change_pct=2.5, rvol=1, rsi=85, ema9=51)
    assert p.score(weak)[0] == pytest.approx(2.2) and p.label(weak, 2.2) == "WATCH"
    assert p.filters.reject_reason(M(price=4, volume=1e6, change_pct=3)) == "min_price"
    assert p.filters.reject_reason(M(price=50, volume=4e5, change_pct=3)) == "min_volume"
    assert p.filters.reject_reason(M(price=50, volume=1e6, change_pct=1.9)) == "min_change"


def test_gap_presets():
    up, down = preset("gap-up"), preset("gap-down")
    m = M(price=110, open=108, gap_pct=6.5, rvol=3, rsi=60, dist_sma20_pct=5)
    assert up.filters.reject_reason(m) is None and down.filters.reject_reason(m) == "max_gap"
    assert up.score(m)[1] == {"gap": 20.0, "rvol": 25.0, "rsi": 15.0, "sma20": 20.0}
    assert up.score(m)[0] == 80.0 and up.label(m, 80.0) == "BUY"
    faded = M(price=105, open=108, gap_pct=6.5, rvol=3, rsi=60, dist_sma20_pct=5)
    assert up.label(faded, 80.0) == "WATCH"  # gave the gap back below the open
    d = M(price=90, open=91, gap_pct=-10, rvol=1, rsi=40, dist_sma20_pct=-12)
    assert down.filters.reject_reason(d) is None and up.filters.reject_reason(d) == "min_gap"
    assert down.score(d) == (65.0, {"gap": 40.0, "rvol": 0.0, "rsi": 15.0, "sma20": 10.0})
    assert down.label(d, 65.0) == "SELL"


def test_mean_reversion():
    p = preset("mean-reversion")
    m = M(price=80, change_pct=-3, rsi=25, dist_sma20_pct=-8, dist_sma50_pct=-15, rvol=2)
    assert p.filters.reject_reason(m) is None
    assert p.filters.reject_reason(M(price=80, change_pct=0.5)) == "max_change"
    score, parts = p.score(m)
    assert parts == {"rsi": 26.2, "below_sma20": 20.0, "below_sma50": 20.0, "rvol": 10.0}
    assert score == 76.2 and p.label(m, score) == "BUY"
    assert p.label(M(price=80, rsi=35), 76.2) == "WATCH"  # not oversold


def test_breakout():
    p = preset("breakout")
    m = M(price=102, vwap=101, ema9=100, sma20=98, rvol=2, change_pct=3)
    score, parts = p.score(m)
    assert parts == {"above_vwap": 20.0, "trend": 30.0, "rvol": 15.0, "change": 10.0} and score == 75.0
    assert p.label(m, score) == "BUY"
    unstacked = M(price=102, vwap=101, ema9=100, sma20=101, rvol=3, change_pct=5)
    s2, parts2 = p.score(unstacked)
    assert parts2["trend"] == 15.0 and s2 == 85.0 and p.label(unstacked, s2) == "WATCH"
    assert p.filters.reject_reason(M(price=10, change_pct=0.5)) == "min_change"


def test_volatile():
    p = preset("volatile")
    m = M(price=20, volume=5e5, range_pct=10, rvol=3, change_pct=-10, rsi=15)
    assert p.filters.reject_reason(m) is None
    assert p.score(m) == (95.0, {"range": 35.0, "rvol": 25.0, "change": 20.0, "rsi_extreme": 15.0})
    assert p.label(m, 95.0) == "WATCH"
    assert p.filters.reject_reason(M(price=1.5, volume=5e5)) == "min_price"


def test_scores_are_capped_at_100():
    maxed = M(price=100, open=90, volume=1e9, change_pct=50, gap_pct=50, range_pct=50, rvol=10, rsi=65,
              ema9=90, sma20=80, sma50=70, vwap=90, dist_sma20_pct=5, dist_sma50_pct=5)
    for p in PRESETS.values():
        assert p.score(maxed)[0] <= 100.0
    greedy = Preset("greedy", "", Filters(), "", "", lambda m: {"a": 70.0, "b": 70.0}, lambda m: "BUY")
    assert greedy.score(maxed)[0] == 100.0


def _row(symbol: str, change: float, volume: float = 1e6) -> MarketRow:
    return MarketRow(symbol, last=100 + change, prev_close=100, open=100, high=100 + max(change, 0) + 1,
                     low=99 + min(change, 0), volume=volume, closes=(100.0,) * 30, highs=(101.0,) * 30,
                     lows=(99.0,) * 30, volumes=(1e6,) * 30)


def test_ranking_limits_and_overrides():
    rows = [_row("AAA", 3), _row("BBB", 8), _row("CCC", 5), _row("DDD", 1), _row("EEE", 6, volume=1e5)]
    out = scan_rows(preset("momentum"), rows, num=2)
    assert out["scanned"] == 5 and out["passed"] == 3  # DDD moved too little, EEE traded too little
    assert [i["symbol"] for i in out["ideas"]] == ["BBB", "CCC"]
    assert out["ideas"][0]["score"] >= out["ideas"][1]["score"]
    assert set(out["ideas"][0]) >= {"score", "label", "price", "change_pct", "rvol", "rsi", "points"}
    loose = scan_rows(preset("momentum"), rows, num=10, overrides={"min_change": 0.5, "min_volume": 0})
    assert loose["passed"] == 5 and loose["filters"]["min_change"] == 0.5
    capped = scan_rows(preset("momentum"), rows, overrides={"max_change": 5.5})
    assert [i["symbol"] for i in capped["ideas"]] == ["CCC", "AAA"]
    detailed = scan_rows(preset("momentum"), rows, num=1, detail=True)
    assert detailed["ideas"][0]["metrics"]["gap_pct"] == 0.0
    empty = scan_rows(preset("gap-up"), rows)
    assert empty == {"preset": "gap-up", "filters": {"min_gap": 3}, "scanned": 5, "passed": 0, "ideas": []}


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="momentum"):
        preset("moonshot")
