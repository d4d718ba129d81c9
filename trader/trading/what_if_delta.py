"""A trade's risk delta without building the report after it (`what_if_delta`).

A proposal stores ``what_if(...).to_dict()``: the metrics that moved, the warnings added and cleared, and the
summary after. A batch of proposals (a strategy's bar close) prices many trades against one book, and the full
`what_if` rebuilds every row, group and cluster of the book for each of them although only the traded symbol's
value changes. `BookBefore` reads the book once; `what_if_delta` then computes the same dict from what one trade
touches: the book's sums (exact: the book's partial sums plus the symbol's old and new value give the floats
``math.fsum`` gives over the whole book, as the report sums), the symbol's row, the groups that list it and, when
the clustered symbols stay the same, the one cluster holding it. Anything else falls back to `what_if`.
``tests/trading/test_what_if_delta.py`` checks it equals `what_if(...).to_dict()` on random books.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from trader.trading.groups import position_value
from trader.trading.models import Position
from trader.trading.portfolio_risk import (
    CorrelationCluster,
    Correlations,
    RiskInputs,
    RiskReport,
    _change,  # the same before/after/delta entry as what_if's
    cluster_texts,
    correlation_clusters,
    figures_from_sums,
    group_warning,
    position_level,
    structure_cluster,
    what_if,
)

__all__ = ["BookBefore", "what_if_delta"]


def _partials(values: Any) -> list[float]:
    """Non-overlapping partial sums whose exact sum is the exact sum of ``values`` (Shewchuk; the algorithm
    behind ``math.fsum``): ``math.fsum(partials + [a, b])`` is the correctly rounded sum of values, a and b."""
    parts: list[float] = []
    for x in values:
        i = 0
        for y in parts:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                parts[i] = lo
                i += 1
            x = hi
        parts[i:] = [x]
    return parts


class BookBefore:
    """What every trade's delta reads of one book (its inputs, its report ``before`` and ``values_by_symbol``),
    computed once: for a batch of proposals against the same book."""

    def __init__(self, inputs: RiskInputs, before: RiskReport, book_values: Mapping[str, float],
                 correlations: Correlations | None) -> None:
        self.inputs, self.before, self.book_values, self.correlations = inputs, before, book_values, correlations
        nlv = inputs.nlv
        # The fast path needs a valid NLV and, with returns, the shared correlation structures; else what_if runs.
        self.fast = (isinstance(nlv, (int, float)) and math.isfinite(nlv) and nlv > 0
                     and (inputs.returns is None or correlations is not None))
        if not self.fast:
            return
        self.pct = pct = 100.0 / nlv
        values = [v for v in book_values.values() if v != 0]
        self.n_values = len(values)
        self.long = _partials(v for v in values if v > 0)
        self.short = _partials(-v for v in values if v < 0)
        self.squares = _partials(v * v for v in values)
        t = inputs.thresholds
        self.book_warnings = figures_from_sums(math.fsum(self.long), math.fsum(self.short),
                                               math.fsum(self.squares), pct, t).warnings(len(values), t)
        self.old_warnings = set(before.warnings)
        self.cluster_warnings = [w for c in before.clusters if (w := cluster_texts(c, t)[0])]
        self.structure = None
        if inputs.returns is not None:
            symbols = tuple(s for s, v in book_values.items() if v * pct != 0)  # as the report picks them
            structure = correlations(symbols)  # type: ignore[misc]
            by_names = {c.symbols: c for c in before.clusters}
            if structure.corr is not None and len(by_names) == len(structure.names) and all(
                    n in by_names for n in structure.names):
                self.structure = structure
                self.clusters = [by_names[n] for n in structure.names]  # in component order
                self.component = {s: k for k, names in enumerate(structure.names) for s in names}
                self.position = {s: i for i, s in enumerate(structure.kept)}
                self.weights = np.array([book_values[s] * pct for s in structure.kept])


def what_if_delta(book: BookBefore, new_position: Position, inputs: RiskInputs | None = None,
                  correlations: Correlations | None = None) -> dict[str, Any]:
    """``what_if(inputs, new_position, before, correlations, book_values).to_dict()``, computed from the parts
    the trade changes. ``inputs``/``correlations``: the trade's own when they differ from ``book``'s only in
    holding its symbol's returns too (a batch's `risk_inputs`); by default ``book``'s."""
    inputs = inputs or book.inputs
    correlations = correlations or book.correlations
    before, book_values = book.before, book.book_values
    if not book.fast or (inputs.returns is not None and correlations is None):
        return what_if(inputs, new_position, before, correlations, book_values).to_dict()
    t, pct = inputs.thresholds, book.pct
    sym = new_position.symbol.upper()
    old_v = book_values.get(sym, 0.0)
    new_v = old_v + position_value(new_position)  # as values_by_symbol adds the trade's line, the last one
    # The book's exact sums, minus the symbol's old value, plus its new one: fsum rounds the exact result once.
    figures = figures_from_sums(
        math.fsum(book.long + ([-old_v] if old_v > 0 else []) + ([new_v] if new_v > 0 else [])),
        math.fsum(book.short + ([old_v] if old_v < 0 else []) + ([-new_v] if new_v < 0 else [])),
        math.fsum(book.squares + ([-(old_v * old_v)] if old_v else []) + ([new_v * new_v] if new_v else [])),
        pct, t)
    n_after = book.n_values - (old_v != 0) + (new_v != 0)

    removed: list[str] = list(book.book_warnings)  # before's warnings this trade may change, and what they become
    added: list[str] = []
    if old_v != 0:
        removed += filter(None, [position_level(sym, old_v * pct, t)[1]])
    if new_v != 0:
        added += filter(None, [position_level(sym, new_v * pct, t)[1]])
    added += figures.warnings(n_after, t)

    changes = {  # the report's rounding first, as `what_if` compares two reports
        "gross_pct": _change(before.gross_pct, round(figures.gross, 4)),
        "net_pct": _change(before.net_pct, round(figures.net, 4)),
        "long_pct": _change(before.long_pct, round(figures.long, 4)),
        "short_pct": _change(before.short_pct, round(figures.short, 4)),
        "hhi": _change(before.hhi, round(figures.hhi, 6)),
        f"{sym}_weight_pct": _change(round(old_v * pct, 4) if old_v != 0 else 0.0,
                                     round(new_v * pct, 4) if new_v != 0 else 0.0),
    }
    after_all: dict[str, float] | None = None
    for g, g_before in zip(inputs.groups, before.groups, strict=True):
        if sym not in g.symbols:  # its members' values did not change: nor did its usage
            continue
        if after_all is None:  # = values_by_symbol(positions + (new_position,)): same order, same sums
            after_all = {**book_values, sym: new_v}
        used_b = sum(abs(v) for s, v in book_values.items() if s in g.symbols) * pct  # as group_exposure sums
        used_a = sum(abs(v) for s, v in after_all.items() if s in g.symbols) * pct
        if used_b > g.budget_pct + 1e-9:
            removed.append(group_warning(g, used_b))
        if used_a > g.budget_pct + 1e-9:
            added.append(group_warning(g, used_a))
        if g_before.used_pct != round(used_a, 4):
            changes[f"group_{g.name}_pct"] = _change(g_before.used_pct, round(used_a, 4))

    if inputs.returns is not None:
        clusters_after = _clusters_after(book, sym, old_v, new_v, inputs, correlations)  # type: ignore[arg-type]
        removed += book.cluster_warnings
        added += [w for c in clusters_after if (w := cluster_texts(c, t)[0])]
        top_b = max((c.net_pct for c in before.clusters if sym in c.symbols), default=0.0)
        top_a = max((c.net_pct for c in clusters_after if sym in c.symbols), default=0.0)
        if top_b or top_a:
            changes[f"{sym}_cluster_net_pct"] = _change(top_b, top_a)

    old = book.old_warnings
    after_set = (old - set(removed)) | set(added)
    return {
        "symbol": sym,
        "changes": changes,
        # `added` is in the report's order (the symbol's row, book, groups, clusters): the new ones keep it
        "new_warnings": [w for w in added if w not in old],
        "cleared_warnings": [w for w in before.warnings if w not in after_set],
        "summary_after": figures.summary(n_after, len(after_set)),
    }


def _clusters_after(book: BookBefore, sym: str, old_v: float, new_v: float, inputs: RiskInputs,
                    correlations: Correlations) -> list[CorrelationCluster]:
    """The report's clusters after the trade: when the clustered symbols are the same, before's with the traded
    symbol's cluster recomputed (a cluster depends only on its members' weights); else all of them."""
    pct, t = book.pct, inputs.thresholds
    same = sym in book.book_values and (old_v * pct != 0) == (new_v * pct != 0)
    if book.structure is None or not same:
        after = {**book.book_values, sym: new_v}
        weights = {s: v * pct for s, v in after.items() if v != 0}
        structure = correlations(tuple(s for s, w in weights.items() if w != 0))
        return correlation_clusters(weights, inputs.returns or {}, t, structure)[0]
    k = book.component.get(sym)
    if k is None:  # not in any cluster: none changes
        return sorted(book.clusters, key=lambda c: -c.net_pct)
    weights = book.weights.copy()
    weights[book.position[sym]] = new_v * pct
    clusters = list(book.clusters)
    clusters[k] = structure_cluster(book.structure, k, weights, t)
    clusters.sort(key=lambda c: -c.net_pct)
    return clusters
