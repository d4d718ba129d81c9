"""Portfolio risk on hand-built books: exposures, HHI, levels, groups, direction-aware clusters, what-if."""

from __future__ import annotations

import numpy as np
import pytest

from trader.messaging.codec import packb, unpackb
from trader.trading.groups import PositionGroup
from trader.trading.models import Position
from trader.trading.portfolio_risk import (
    RiskInputs,
    RiskThresholds,
    correlation_clusters,
    portfolio_risk,
    what_if,
)

NLV = 100_000.0


def pos(sym: str, value: float) -> Position:
    """A position worth ``value`` (signed) at $100 a share."""
    return Position(sym, value / 100.0, 100.0, 100.0)


def returns(n: int = 120, seed: int = 7) -> dict[str, list[float]]:
    """AAA/BBB/CCC share one factor (|corr| ≈ 0.95), INV is its mirror image, the rest are independent."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0, 0.01, n)
    noise = lambda: rng.normal(0, 0.003, n)  # noqa: E731
    out = {s: factor + noise() for s in ("AAA", "BBB", "CCC")}
    out["INV"] = -factor + noise()
    for s in ("XXX", "YYY", "ZZZ", "WWW"):
        out[s] = rng.normal(0, 0.01, n)
    return {k: v.tolist() for k, v in out.items()}


RET = returns()


def test_exposures_and_hhi_by_hand():
    book = [pos("XXX", 30_000), pos("YYY", 30_000), pos("ZZZ", -20_000)]
    r = portfolio_risk(book, NLV)
    assert (r.long_pct, r.short_pct, r.gross_pct, r.net_pct) == pytest.approx((60.0, 20.0, 80.0, 40.0))
    # gross weights 3/8, 3/8, 2/8 → HHI = (9 + 9 + 4) / 64
    assert r.hhi == pytest.approx(22 / 64)
    assert r.effective_positions == pytest.approx(64 / 22, abs=0.01)
    assert [p.symbol for p in r.positions] == ["XXX", "YYY", "ZZZ"]
    assert r.weight_of("zzz") == pytest.approx(-20.0)
    assert not r.hedged
    assert r.summary.startswith("net long 40.0% of NLV (gross 80.0%, 3 positions)")


def test_concentrated_book_is_critical():
    book = [pos("XXX", 40_000), pos("YYY", 12_000), pos("ZZZ", 5_000), pos("WWW", 5_000)]
    r = portfolio_risk(book, NLV)
    levels = {p.symbol: p.level for p in r.positions}
    assert levels == {"XXX": "critical", "YYY": "warning", "ZZZ": "ok", "WWW": "ok"}
    assert any(w.startswith("XXX is 40.0% of NLV (critical") for w in r.warnings)
    assert any(w.startswith("YYY is 12.0% of NLV (warning") for w in r.warnings)
    assert any("concentrated book: HHI" in w for w in r.warnings)


def test_thresholds_are_configurable():
    r = portfolio_risk([pos("XXX", 12_000)], NLV, thresholds=RiskThresholds(position_warning_pct=20.0,
                                                                            position_critical_pct=30.0))
    assert r.positions[0].level == "ok" and r.warnings == ()


def test_hedged_pair_raises_no_cluster_warning():
    book = [pos("AAA", 20_000), pos("BBB", -20_000), pos("XXX", 5_000)]
    r = portfolio_risk(book, NLV, returns=RET)
    assert len(r.clusters) == 1
    c = r.clusters[0]
    assert c.symbols == ("AAA", "BBB") and c.avg_abs_corr > 0.85
    assert c.gross_pct == pytest.approx(40.0) and c.net_pct == pytest.approx(0.0)
    assert c.hedged and not c.warning
    assert not any("correlated cluster" in w for w in r.warnings)
    assert any("hedged" in n for n in r.notes)
    assert r.hedged and r.summary.startswith("hedged: gross 45.0% / net 5.0% of NLV")


def test_same_pair_long_long_warns():
    r = portfolio_risk([pos("AAA", 20_000), pos("BBB", 20_000)], NLV, returns=RET)
    (c,) = r.clusters
    assert c.net_pct == pytest.approx(40.0) and c.direction == "long" and c.warning
    assert any(w.startswith("correlated cluster AAA, BBB") and "40.0% of NLV net long" in w for w in r.warnings)
    assert not r.hedged


def test_stacked_cluster_of_three_warns_below_single_position_limits():
    book = [pos("AAA", 10_000), pos("BBB", 10_000), pos("CCC", 10_500), pos("XXX", 10_000), pos("YYY", 9_000)]
    r = portfolio_risk(book, NLV, returns=RET)
    assert all(p.level == "ok" for p in r.positions if p.symbol != "CCC")
    (c,) = r.clusters
    assert c.symbols == ("AAA", "BBB", "CCC")
    assert c.net_pct == pytest.approx(30.5) and c.warning
    assert sum("correlated cluster" in w for w in r.warnings) == 1


def test_short_cluster_reports_direction():
    r = portfolio_risk([pos("AAA", -20_000), pos("BBB", -15_000)], NLV, returns=RET)
    (c,) = r.clusters
    assert c.direction == "short" and c.warning and "net short" in r.warnings[-1]


def test_anti_correlated_longs_net_out():
    r = portfolio_risk([pos("AAA", 20_000), pos("INV", 20_000)], NLV, returns=RET)
    (c,) = r.clusters
    assert c.symbols == ("AAA", "INV") and c.net_pct == pytest.approx(0.0) and not c.warning


def test_uncorrelated_symbols_form_no_cluster():
    clusters, notes = correlation_clusters({"XXX": 20.0, "YYY": 20.0, "ZZZ": 20.0}, RET)
    assert clusters == [] and notes == []


def test_short_or_missing_history_is_noted_not_clustered():
    ret = dict(RET, AAA=RET["AAA"][:5])
    r = portfolio_risk([pos("AAA", 20_000), pos("BBB", 20_000), pos("NEW", 1_000)], NLV, returns=ret)
    assert r.clusters == ()
    assert any(n.startswith("AAA: fewer than 20") for n in r.notes)
    assert any(n.startswith("NEW: fewer than 20") for n in r.notes)


def test_group_compliance():
    tech = PositionGroup("tech", 30.0, ("AAA", "BBB"))
    energy = PositionGroup("energy", 20.0, ("XXX",))
    r = portfolio_risk([pos("AAA", 20_000), pos("BBB", -15_000), pos("XXX", 5_000)], NLV, [tech, energy])
    by_name = {g.name: g for g in r.groups}
    assert by_name["tech"].used_pct == pytest.approx(35.0) and not by_name["tech"].within
    assert by_name["energy"].used_pct == pytest.approx(5.0) and by_name["energy"].within
    assert "group tech over budget: 35.0% of NLV vs 30% budget" in r.warnings


def test_leverage_warning_and_empty_book():
    r = portfolio_risk([pos("XXX", 90_000), pos("YYY", -90_000)], NLV)
    assert any("gross exposure 180.0%" in w for w in r.warnings)
    empty = portfolio_risk([], NLV)
    assert empty.gross_pct == 0 and empty.hhi == 0 and empty.summary == "no positions; no warnings"


def test_unknown_nlv_is_an_error():
    for nlv in (None, 0.0, -5.0):
        with pytest.raises(ValueError, match="net liquidation"):
            portfolio_risk([pos("XXX", 1_000)], nlv)


def test_report_round_trips_on_the_wire():
    r = portfolio_risk([pos("AAA", 20_000), pos("BBB", 20_000)], NLV, [PositionGroup("t", 50.0, ("AAA",))], RET)
    assert unpackb(packb(r)) == r
    assert r.to_dict()["clusters"][0]["symbols"] == ("AAA", "BBB")


def test_what_if_adds_a_correlated_long():
    inputs = RiskInputs(positions=(pos("AAA", 20_000), pos("XXX", 5_000)), nlv=NLV,
                        groups=(PositionGroup("tech", 30.0, ("AAA", "BBB")),), returns=RET)
    delta = what_if(inputs, pos("BBB", 15_000))
    assert delta.changes["gross_pct"] == {"before": 25.0, "after": 40.0, "delta": 15.0}
    assert delta.changes["BBB_weight_pct"]["after"] == pytest.approx(15.0)
    assert delta.changes["group_tech_pct"] == {"before": 20.0, "after": 35.0, "delta": 15.0}
    assert delta.changes["BBB_cluster_net_pct"]["after"] == pytest.approx(35.0)
    assert any("correlated cluster AAA, BBB" in w for w in delta.new_warnings)
    assert any("group tech over budget" in w for w in delta.new_warnings)
    assert "BBB is 15.0% of NLV (critical" not in " ".join(delta.new_warnings)  # 15% is not above 15%
    d = delta.to_dict()
    assert set(d) == {"symbol", "changes", "new_warnings", "cleared_warnings", "summary_after"}


def test_what_if_hedge_clears_the_cluster_warning():
    inputs = RiskInputs(positions=(pos("AAA", 20_000), pos("BBB", 20_000)), nlv=NLV, returns=RET)
    delta = what_if(inputs, pos("BBB", -20_000))  # close BBB…
    assert any("correlated cluster" in w for w in delta.cleared_warnings)
    assert delta.after.weight_of("BBB") == 0.0
    hedge = what_if(RiskInputs(positions=(pos("AAA", 20_000), pos("BBB", 20_000)), nlv=NLV, returns=RET),
                    pos("CCC", -40_000))  # …or short a third correlated stock against both
    assert hedge.after.clusters[0].net_pct == pytest.approx(0.0)
    assert any("correlated cluster" in w for w in hedge.cleared_warnings)
    assert hedge.after.hedged


def _clusters_pairwise(weights_pct, rets, t=RiskThresholds()):  # noqa: B008
    """The clustering as first written (every pair visited, each cluster's pairs averaged as a list): the
    reference the shared `CorrelationStructure` must reproduce bit for bit."""
    from trader.trading.portfolio_risk import CorrelationCluster, _aligned_returns

    kept, matrix, notes = _aligned_returns([s for s, w in weights_pct.items() if w != 0], rets, t.min_observations)
    if matrix is None:
        return [], notes
    corr = np.corrcoef(matrix)
    parent = list(range(len(kept)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            if abs(corr[i, j]) >= t.cluster_corr:
                parent[find(i)] = find(j)
    comps: dict[int, list[int]] = {}
    for i in range(len(kept)):
        comps.setdefault(find(i), []).append(i)
    out = []
    for m in (c for c in comps.values() if len(c) >= 2):
        w = np.array([weights_pct[kept[i]] for i in m])
        anchor = m[int(np.argmax(np.abs(w)))]
        signs = np.array([1.0 if i == anchor else np.copysign(1.0, corr[i, anchor]) for i in m])
        signed, gross = float((w * signs).sum()), float(np.abs(w).sum())
        pairs = [abs(corr[a, b]) for x, a in enumerate(m) for b in m[x + 1:]]
        out.append(CorrelationCluster(tuple(sorted(kept[i] for i in m)), round(float(np.mean(pairs)), 4),
                                      round(gross, 4), round(abs(signed), 4), "long" if signed >= 0 else "short",
                                      abs(signed) <= t.hedge_ratio * gross, abs(signed) > t.cluster_net_pct))
    out.sort(key=lambda c: -c.net_pct)
    return out, notes


@pytest.mark.parametrize("seed", range(40))
def test_shared_correlations_give_the_same_report_and_what_if(seed):
    """A batch's what-ifs share each symbol list's `CorrelationStructure` (`correlations`) and the book's values
    by symbol: every report and delta is identical to computing it afresh, and the clusters to visiting every
    pair (random books: factors, mirrored and independent names, short histories, missing days)."""
    from trader.trading.groups import values_by_symbol
    from trader.trading.portfolio_risk import correlation_structure

    rng = np.random.default_rng(seed)
    n_sym = int(rng.integers(2, 30))
    factors = rng.normal(0, 0.01, (3, 150))
    rets: dict[str, list[float]] = {}
    for k in range(n_sym):
        f = factors[int(rng.integers(0, 3))] * rng.choice([-1.0, 1.0, 0.0])
        r = f + rng.normal(0, float(rng.choice([0.001, 0.004, 0.02])), 150)
        if rng.random() < 0.1:
            r = r[: int(rng.integers(5, 40))]  # a short history
        if rng.random() < 0.1:
            r[int(rng.integers(0, len(r)))] = np.nan  # a missing day
        rets[f"S{k}"] = r.tolist()
    book = [pos(f"S{k}", float(rng.choice([-1, 1]) * rng.integers(1_000, 30_000))) for k in range(n_sym)]
    calls: dict[tuple[str, ...], object] = {}

    def shared(symbols):
        if symbols not in calls:
            calls[symbols] = correlation_structure(symbols, rets)
        return calls[symbols]

    weights = {p.symbol: p.quantity * 100.0 * 100.0 / NLV for p in book}
    assert correlation_clusters(weights, rets) == _clusters_pairwise(weights, rets)
    fresh = portfolio_risk(book, NLV, returns=rets)
    assert portfolio_risk(book, NLV, returns=rets, correlations=shared) == fresh
    inputs = RiskInputs(tuple(book), NLV, returns=rets)
    for sym in ("S0", f"S{n_sym - 1}", "S1"):  # adding to, closing and flipping held names
        for qty in (5.0, -book[int(sym[1:])].quantity, -3 * book[int(sym[1:])].quantity):
            new = Position(sym, qty, 100.0, 100.0)
            expected = what_if(inputs, new).to_dict(full=True)
            assert what_if(inputs, new, before=fresh, correlations=shared).to_dict(full=True) == expected
            assert what_if(inputs, new, before=fresh, correlations=shared,
                           book_values=values_by_symbol(book)).to_dict(full=True) == expected
    assert len(calls) >= 1
