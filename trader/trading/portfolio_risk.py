"""Portfolio risk report and what-if deltas (pure: numpy only).

Every percentage is of net liquidation (NLV). With signed market values ``vᵢ`` (shorts negative):

- long = Σ max(vᵢ, 0), short = Σ max(−vᵢ, 0), gross = long + short, net = long − short;
- HHI (Herfindahl–Hirschman) on gross weights: ``Σ (|vᵢ| / Σ|vⱼ|)²`` — 1.0 is one position, 1/N is N equal
  ones; ``1 / HHI`` is the "effective number of positions";
- per-position weight ``|vᵢ| / NLV``: above ``position_warning_pct`` a warning, above ``position_critical_pct``
  critical;
- group compliance: each group's gross usage against its budget (see :mod:`trader.trading.groups`);
- correlation clusters: ``numpy.corrcoef`` of daily returns (aligned on their most recent common days); a cluster
  is a connected component of the graph with an edge wherever ``|corr| ≥ cluster_corr``. Its exposure is
  *direction-aware*: taking the largest member as the anchor, ``net = Σ wᵢ × sign(corr(i, anchor))`` (signed
  weights), so a long/short pair of correlated stocks — or a long/long pair of anti-correlated ones — nets
  out and raises no warning, while a long/long cluster whose |net| exceeds ``cluster_net_pct`` does;
- the book is "hedged" when there are shorts and |net| ≤ ``hedge_ratio`` × gross.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from trader.messaging.codec import wire
from trader.trading.groups import PositionGroup, group_exposure, position_value, values_by_symbol
from trader.trading.models import Position

__all__ = [
    "RiskThresholds",
    "PositionRisk",
    "GroupCompliance",
    "CorrelationCluster",
    "RiskReport",
    "RiskInputs",
    "RiskDelta",
    "portfolio_risk",
    "correlation_clusters",
    "correlation_structure",
    "CorrelationStructure",
    "what_if",
    "risk_brief",
]

LEVEL_OK = "ok"
LEVEL_WARNING = "warning"
LEVEL_CRITICAL = "critical"


@wire(name="trading.RiskThresholds")
@dataclass(frozen=True, slots=True)
class RiskThresholds:
    """Where the report starts warning (percentages of NLV unless noted)."""

    position_warning_pct: float = 10.0
    position_critical_pct: float = 15.0
    cluster_corr: float = 0.7  # |correlation| that links two symbols into a cluster
    cluster_net_pct: float = 30.0  # direction-aware net exposure of a cluster that warrants a warning
    hedge_ratio: float = 0.25  # "hedged" when |net| <= hedge_ratio × gross (and something is short)
    hhi_warning: float = 0.25  # fraction (0..1): above it the book is concentrated
    gross_warning_pct: float = 150.0  # leverage
    min_observations: int = 20  # daily returns needed before a correlation is trusted


@wire(name="trading.PositionRisk")
@dataclass(frozen=True, slots=True)
class PositionRisk:
    symbol: str
    value: float  # signed market value
    weight_pct: float  # signed % of NLV
    level: str  # ok | warning | critical


@wire(name="trading.GroupCompliance")
@dataclass(frozen=True, slots=True)
class GroupCompliance:
    name: str
    budget_pct: float
    used_pct: float
    within: bool


@wire(name="trading.CorrelationCluster")
@dataclass(frozen=True, slots=True)
class CorrelationCluster:
    """Symbols whose daily returns move together (|corr| ≥ threshold, transitively)."""

    symbols: tuple[str, ...]
    avg_abs_corr: float
    gross_pct: float
    net_pct: float  # direction-aware |Σ wᵢ × sign(corr(i, anchor))|
    direction: str  # "long" or "short" the cluster's common factor (the anchor's direction)
    hedged: bool
    warning: bool


@wire(name="trading.RiskReport")
@dataclass(frozen=True, slots=True)
class RiskReport:
    nlv: float
    gross_pct: float
    net_pct: float
    long_pct: float
    short_pct: float
    hhi: float
    effective_positions: float
    hedged: bool
    positions: tuple[PositionRisk, ...] = ()
    groups: tuple[GroupCompliance, ...] = ()
    clusters: tuple[CorrelationCluster, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    summary: str = ""

    def weight_of(self, symbol: str) -> float:
        """Signed % of NLV held in ``symbol`` (0 when not held)."""
        sym = symbol.upper()
        return next((p.weight_pct for p in self.positions if p.symbol == sym), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe nested dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """Everything :func:`portfolio_risk` needs, kept together so :func:`what_if` can re-run it."""

    positions: tuple[Position, ...]
    nlv: float
    groups: tuple[PositionGroup, ...] = ()
    returns: Mapping[str, Sequence[float]] | None = None
    thresholds: RiskThresholds = field(default_factory=RiskThresholds)


@wire(name="trading.RiskDelta")
@dataclass(frozen=True, slots=True)
class RiskDelta:
    """A trade's effect on the report: each metric before/after, and the warnings it adds or clears."""

    symbol: str
    before: RiskReport
    after: RiskReport
    changes: dict[str, dict[str, float]]  # metric -> {"before", "after", "delta"}
    new_warnings: tuple[str, ...]
    cleared_warnings: tuple[str, ...]

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """Compact JSON for ``propose`` (the full before/after reports only with ``full=True``)."""
        out: dict[str, Any] = {
            "symbol": self.symbol,
            "changes": self.changes,
            "new_warnings": list(self.new_warnings),
            "cleared_warnings": list(self.cleared_warnings),
            "summary_after": self.after.summary,
        }
        if full:
            out["before"] = self.before.to_dict()
            out["after"] = self.after.to_dict()
        return out


# --------------------------------------------------------------------------- correlation clusters
def _aligned_returns(
    symbols: Sequence[str], returns: Mapping[str, Sequence[float]], min_obs: int
) -> tuple[list[str], np.ndarray | None, list[str]]:
    """Matrix (symbols × days) of the most recent common days; returns (kept symbols, matrix, notes)."""
    notes: list[str] = []
    series: dict[str, np.ndarray] = {}
    upper = {k.upper(): v for k, v in returns.items()}
    for sym in symbols:
        raw = upper.get(sym)
        arr = np.asarray(raw if raw is not None else [], dtype=float)
        if arr.ndim != 1 or np.isfinite(arr).sum() < min_obs:
            notes.append(f"{sym}: fewer than {min_obs} daily returns, correlation not checked")
            continue
        series[sym] = arr
    if len(series) < 2:
        return list(series), None, notes
    n = min(len(a) for a in series.values())
    kept = list(series)
    matrix = np.vstack([series[s][-n:] for s in kept])
    matrix = matrix[:, np.isfinite(matrix).all(axis=0)]  # drop days any symbol is missing
    if matrix.shape[1] < min_obs:
        notes.append(f"only {matrix.shape[1]} common days of returns: correlation not checked")
        return kept, None, notes
    flat = matrix.std(axis=1) == 0
    if flat.any():
        notes += [f"{s}: returns do not vary, correlation not checked" for s, f in zip(kept, flat, strict=True) if f]
        kept = [s for s, f in zip(kept, flat, strict=True) if not f]
        matrix = matrix[~flat]
    if len(kept) < 2:
        return kept, None, notes
    return kept, matrix, notes


@dataclass(frozen=True, slots=True)
class CorrelationStructure:
    """What clustering reads of the returns, for one ordered list of held symbols: the symbols with enough
    history (``kept``), their correlation matrix and its connected components (``|corr| ≥ cluster_corr``, only
    those of ≥ 2 members). It does not depend on the weights, so a batch's what-ifs on the same book share one
    (`Correlations`)."""

    kept: tuple[str, ...]
    corr: np.ndarray | None
    components: tuple[tuple[int, ...], ...]
    avg_abs_corr: tuple[float, ...]  # per component: the mean |corr| of its pairs, rounded as reported
    notes: tuple[str, ...]
    # per component, what every report on this structure needs of it again: its members as an index array and
    # their names sorted (a cluster's `symbols`)
    index: tuple[np.ndarray, ...] = ()
    names: tuple[tuple[str, ...], ...] = ()


def correlation_structure(symbols: Sequence[str], returns: Mapping[str, Sequence[float]],
                          thresholds: RiskThresholds = RiskThresholds()  # noqa: B008 - frozen value
                          ) -> CorrelationStructure:
    """The `CorrelationStructure` of ``symbols`` (in this order) from their daily returns."""
    kept, matrix, notes = _aligned_returns(symbols, returns, thresholds.min_observations)
    if matrix is None:
        return CorrelationStructure(tuple(kept), None, (), (), tuple(notes))
    corr = np.corrcoef(matrix)
    k = len(kept)
    parent = list(range(k))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # The edges only (NaN compares False, as abs(nan) >= x does), in the order the pairs (i < j) come.
    for i, j in zip(*np.nonzero(np.triu(np.abs(corr) >= thresholds.cluster_corr, 1)), strict=True):
        parent[find(int(i))] = find(int(j))
    components: dict[int, list[int]] = {}
    for i in range(k):
        components.setdefault(find(i), []).append(i)
    clusters = tuple(tuple(m) for m in components.values() if len(m) >= 2)
    # Each pair (a < b, row by row) of a component's members, as one array: the mean of the same values in the
    # same order as a list of them would give.
    avg = tuple(round(float(np.mean(np.abs(corr[np.ix_(m, m)])[np.triu_indices(len(m), 1)])), 4) for m in clusters)
    return CorrelationStructure(tuple(kept), corr, clusters, avg, tuple(notes),
                                tuple(np.array(m, dtype=np.intp) for m in clusters),
                                tuple(tuple(sorted(kept[i] for i in m)) for m in clusters))


# How `portfolio_risk` gets the structure of an ordered list of symbols (default: computed each time).
Correlations = Callable[[tuple[str, ...]], CorrelationStructure]


def correlation_clusters(
    weights_pct: Mapping[str, float],
    returns: Mapping[str, Sequence[float]],
    thresholds: RiskThresholds = RiskThresholds(),  # noqa: B008 - frozen value, safe as a default
    structure: CorrelationStructure | None = None,
) -> tuple[list[CorrelationCluster], list[str]]:
    """Clusters of ≥ 2 held symbols from their daily returns; returns (clusters, notes). ``structure``: the
    `correlation_structure` of the weighted symbols (nonzero weights, in order) when the caller has it."""
    if structure is None:
        structure = correlation_structure([s for s, w in weights_pct.items() if w != 0], returns, thresholds)
    kept, corr = structure.kept, structure.corr
    if corr is None:
        return [], list(structure.notes)
    weights = np.array([weights_pct[s] for s in kept]) if structure.components else None
    clusters = [structure_cluster(structure, k, weights, thresholds)  # type: ignore[arg-type]
                for k in range(len(structure.components))]
    clusters.sort(key=lambda c: -c.net_pct)
    return clusters, list(structure.notes)


def structure_cluster(structure: CorrelationStructure, k: int, weights: np.ndarray,
                      thresholds: RiskThresholds) -> CorrelationCluster:
    """Component ``k`` of ``structure`` as a cluster, from the weights (% of NLV) of ``structure.kept``."""
    members, corr = structure.index[k], structure.corr
    w = weights[members]
    abs_w = np.abs(w)
    at = int(np.argmax(abs_w))
    signs = np.copysign(1.0, corr[members, members[at]])  # type: ignore[index] # each member's sign vs the anchor's…
    signs[at] = 1.0  # …and the anchor's own +1
    # Net exposure to the anchor's return stream: + means long what the cluster has in common.
    signed_net = float((w * signs).sum())
    gross = float(abs_w.sum())
    net = abs(signed_net)
    return CorrelationCluster(
        symbols=structure.names[k],
        avg_abs_corr=structure.avg_abs_corr[k],
        gross_pct=round(gross, 4),
        net_pct=round(net, 4),
        direction="long" if signed_net >= 0 else "short",
        hedged=net <= thresholds.hedge_ratio * gross,
        warning=net > thresholds.cluster_net_pct,
    )


# --------------------------------------------------------------------------- the report
def _fmt_pct(x: float) -> str:
    return f"{x:.1f}%"


def portfolio_risk(
    positions: Sequence[Position],
    nlv: float | None,
    groups: Sequence[PositionGroup] = (),
    returns: Mapping[str, Sequence[float]] | None = None,
    thresholds: RiskThresholds | None = None,
    correlations: Correlations | None = None,
) -> RiskReport:
    """Exposure, concentration, group and correlation risk of a book, with plain-English warnings.
    ``correlations``: where the `CorrelationStructure` of the held symbols comes from (e.g. shared by a batch's
    what-ifs); by default it is computed from ``returns``.

    Raises ValueError when NLV is unknown or not positive (nothing can be expressed as % of NLV).
    """
    return _portfolio_risk(positions, nlv, groups, returns, thresholds, correlations)


def _portfolio_risk(
    positions: Sequence[Position],
    nlv: float | None,
    groups: Sequence[PositionGroup],
    returns: Mapping[str, Sequence[float]] | None,
    thresholds: RiskThresholds | None,
    correlations: Correlations | None,
    same_rows: Mapping[str, PositionRisk] | None = None,
    by_symbol: Mapping[str, float] | None = None,
) -> RiskReport:
    """`portfolio_risk`; ``same_rows``: rows known already for symbols whose value is unchanged at the same NLV
    (`what_if`: every symbol but the trade's, from the report before it; a row depends only on them);
    ``by_symbol``: ``values_by_symbol(positions)`` when the caller has it."""
    t = thresholds or RiskThresholds()
    if nlv is None or not math.isfinite(nlv) or nlv <= 0:
        raise ValueError(f"net liquidation unknown or not positive ({nlv!r}): cannot compute portfolio risk")
    values = {s: v for s, v in (values_by_symbol(positions) if by_symbol is None else by_symbol).items() if v != 0}
    pct = 100.0 / nlv
    book = book_figures(values, pct, t)

    warnings: list[str] = []
    notes: list[str] = []
    rows: list[PositionRisk] = []
    for sym, v in sorted(values.items(), key=lambda kv: -abs(kv[1])):
        level, warning = position_level(sym, v * pct, t)
        if warning:
            warnings.append(warning)
        row = same_rows.get(sym) if same_rows is not None else None
        rows.append(row if row is not None else PositionRisk(sym, round(v, 2), round(v * pct, 4), level))
    warnings += book.warnings(len(values), t)

    compliance: list[GroupCompliance] = []
    for g in groups:
        used = group_exposure(g, positions) * pct
        within = used <= g.budget_pct + 1e-9
        compliance.append(GroupCompliance(g.name, g.budget_pct, round(used, 4), within))
        if not within:
            warnings.append(group_warning(g, used))

    clusters: list[CorrelationCluster] = []
    if returns is not None:
        weights = {s: v * pct for s, v in values.items()}
        structure = correlations(tuple(s for s, w in weights.items() if w != 0)) if correlations else None
        clusters, cnotes = correlation_clusters(weights, returns, t, structure)
        notes += cnotes
        for c in clusters:
            warning, note = cluster_texts(c, t)
            if warning:
                warnings.append(warning)
            elif note:
                notes.append(note)

    return RiskReport(
        nlv=float(nlv), gross_pct=round(book.gross, 4), net_pct=round(book.net, 4), long_pct=round(book.long, 4),
        short_pct=round(book.short, 4), hhi=round(book.hhi, 6),
        effective_positions=round(1 / book.hhi, 2) if book.hhi else 0.0, hedged=book.hedged,
        positions=tuple(rows), groups=tuple(compliance), clusters=tuple(clusters),
        warnings=tuple(warnings), notes=tuple(notes), summary=book.summary(len(values), len(warnings)),
    )


# --------------------------------------------------------------------------- the report's parts
# One function per figure or text, shared by `portfolio_risk` and the what-if's fast path (`what_if_delta`), so
# both give the same floats and the same words.
@dataclass(frozen=True, slots=True)
class BookFigures:
    """Exposure of a book as % of NLV (unrounded), from its nonzero values per symbol."""

    long: float
    short: float
    gross: float
    net: float
    hhi: float
    hedged: bool

    def warnings(self, n_values: int, t: RiskThresholds) -> list[str]:
        """The concentration and leverage warnings, in the report's order."""
        out = []
        if n_values > 1 and self.hhi > t.hhi_warning:
            out.append(f"concentrated book: HHI {self.hhi:.2f} (like {1 / self.hhi:.1f} equal-sized positions)")
        if self.gross > t.gross_warning_pct:
            out.append(f"gross exposure {_fmt_pct(self.gross)} of NLV (leverage above {t.gross_warning_pct:g}%)")
        return out

    def summary(self, n_values: int, n_warnings: int) -> str:
        """The report's one-line summary."""
        if not n_values:
            text = "no positions"
        elif self.hedged:
            text = (f"hedged: gross {_fmt_pct(self.gross)} / net {_fmt_pct(self.net)} of NLV "
                    f"(long {_fmt_pct(self.long)}, short {_fmt_pct(self.short)})")
        else:
            side = "long" if self.net >= 0 else "short"
            text = f"net {side} {_fmt_pct(abs(self.net))} of NLV (gross {_fmt_pct(self.gross)}, {n_values} positions)"
        return text + (f"; {n_warnings} warning{'s' if n_warnings != 1 else ''}" if n_warnings else "; no warnings")


def book_figures(values: Mapping[str, float], pct: float, t: RiskThresholds) -> BookFigures:
    """`BookFigures` of nonzero signed values per symbol (``pct`` = 100 / NLV)."""
    vs = values.values()
    return figures_from_sums(math.fsum(v for v in vs if v > 0), -math.fsum(v for v in vs if v < 0),
                             math.fsum(v * v for v in vs), pct, t)


def figures_from_sums(long_v: float, short_v: float, squares: float, pct: float, t: RiskThresholds) -> BookFigures:
    """`BookFigures` from the book's sums: of its long values, of its short ones (positive), of its values squared.
    Each sum is ``math.fsum``'s (correctly rounded, so independent of order): the what-if's fast path
    (`what_if_delta`) gets the same floats from the book's exact partial sums and the trade's two values."""
    gross_v = long_v + short_v
    net = (long_v - short_v) * pct
    gross = gross_v * pct
    hhi = squares / (gross_v * gross_v) if gross_v > 0 else 0.0  # Σ (|vᵢ| / Σ|vⱼ|)²
    hedged = short_v > 0 and long_v > 0 and abs(net) <= t.hedge_ratio * gross
    return BookFigures(long_v * pct, short_v * pct, gross, net, hhi, hedged)


def position_level(sym: str, weight: float, t: RiskThresholds) -> tuple[str, str | None]:
    """A position's level from its signed weight (% of NLV) and its warning, if any."""
    if abs(weight) > t.position_critical_pct:
        return LEVEL_CRITICAL, f"{sym} is {_fmt_pct(abs(weight))} of NLV (critical: above {t.position_critical_pct:g}%)"
    if abs(weight) > t.position_warning_pct:
        return LEVEL_WARNING, f"{sym} is {_fmt_pct(abs(weight))} of NLV (warning: above {t.position_warning_pct:g}%)"
    return LEVEL_OK, None


def group_warning(g: PositionGroup, used: float) -> str:
    """The warning of a group over its budget (``used``: unrounded % of NLV)."""
    return f"group {g.name} over budget: {_fmt_pct(used)} of NLV vs {g.budget_pct:g}% budget"


def cluster_texts(c: CorrelationCluster, t: RiskThresholds) -> tuple[str | None, str | None]:
    """A cluster's (warning, note): the warning when its net is above the threshold, else a note when hedged."""
    names = ", ".join(c.symbols)
    if c.warning:
        return (f"correlated cluster {names} (avg |corr| {c.avg_abs_corr:.2f}) is {_fmt_pct(c.net_pct)} of NLV "
                f"net {c.direction} (above {t.cluster_net_pct:g}%)"), None
    if c.hedged and c.gross_pct > 0:
        return None, f"correlated cluster {names} is hedged: gross {_fmt_pct(c.gross_pct)}, net {_fmt_pct(c.net_pct)}"
    return None, None


def _report(inputs: RiskInputs, correlations: Correlations | None = None,
            same_rows: Mapping[str, PositionRisk] | None = None,
            by_symbol: Mapping[str, float] | None = None) -> RiskReport:
    return _portfolio_risk(inputs.positions, inputs.nlv, inputs.groups, inputs.returns, inputs.thresholds,
                           correlations, same_rows, by_symbol)


def _change(before: float, after: float) -> dict[str, float]:
    return {"before": round(before, 4), "after": round(after, 4), "delta": round(after - before, 4)}


def what_if(report_inputs: RiskInputs, new_position: Position, before: RiskReport | None = None,
            correlations: Correlations | None = None, book_values: Mapping[str, float] | None = None) -> RiskDelta:
    """The risk report before and after adding ``new_position`` (signed quantity; same symbol lines add up).

    NLV is unchanged: buying with cash or shorting swaps cash for exposure. Only metrics that moved, plus
    gross/net/HHI and the symbol's own weight, are listed in ``changes``. ``before``: the report of
    ``report_inputs`` when the caller has it already (the same book for a batch of trades); ``correlations``:
    see `portfolio_risk`; ``book_values``: ``values_by_symbol`` of the book, when the caller has it.
    """
    before = _report(report_inputs, correlations) if before is None else before
    after_inputs = replace(report_inputs, positions=tuple(report_inputs.positions) + (new_position,))
    sym = new_position.symbol.upper()
    after_values = None
    if book_values is not None:  # the trade's line is the last: added to its symbol's sum as values_by_symbol adds it
        after_values = dict(book_values)
        after_values[sym] = after_values.get(sym, 0.0) + position_value(new_position)
    # Only the trade's symbol changes value (NLV is unchanged): every other row is the one before.
    after = _report(after_inputs, correlations, {r.symbol: r for r in before.positions if r.symbol != sym},
                    after_values)
    changes = {
        "gross_pct": _change(before.gross_pct, after.gross_pct),
        "net_pct": _change(before.net_pct, after.net_pct),
        "long_pct": _change(before.long_pct, after.long_pct),
        "short_pct": _change(before.short_pct, after.short_pct),
        "hhi": _change(before.hhi, after.hhi),
        f"{sym}_weight_pct": _change(before.weight_of(sym), after.weight_of(sym)),
    }
    for g_before, g_after in zip(before.groups, after.groups, strict=True):
        if g_before.used_pct != g_after.used_pct:
            changes[f"group_{g_after.name}_pct"] = _change(g_before.used_pct, g_after.used_pct)
    top_before = max((c.net_pct for c in before.clusters if sym in c.symbols), default=0.0)
    top_after = max((c.net_pct for c in after.clusters if sym in c.symbols), default=0.0)
    if top_before or top_after:
        changes[f"{sym}_cluster_net_pct"] = _change(top_before, top_after)
    old = set(before.warnings)
    new = set(after.warnings)
    return RiskDelta(
        symbol=sym, before=before, after=after, changes=changes,
        new_warnings=tuple(w for w in after.warnings if w not in old),
        cleared_warnings=tuple(w for w in before.warnings if w not in new),
    )


def risk_brief(report: Mapping[str, Any], top: int = 5, max_warnings: int = 10) -> dict[str, Any]:
    """The default ``portfolio-risk`` view of a :meth:`RiskReport.to_dict`: summary, exposure (% of NLV, one
    decimal), HHI, warnings (at most ``max_warnings``; ``warnings_more`` counts the rest), the ``top`` largest
    positions as ``[symbol, signed % of NLV]``, every group over budget or above half of it as ``[name, used %,
    budget %]``, and the ``top`` correlation clusters by net exposure. The full report is ``--detail``."""
    def r1(x: Any) -> Any:
        return None if x is None else round(float(x), 1)

    warnings = list(report.get("warnings") or [])
    positions = list(report.get("positions") or [])
    out: dict[str, Any] = {"summary": report.get("summary", "")}
    for key in ("gross_pct", "net_pct", "long_pct", "short_pct"):
        out[key] = r1(report.get(key))
    out["hhi"] = round(float(report.get("hhi") or 0.0), 3)
    out["hedged"] = bool(report.get("hedged"))
    out["warnings"] = warnings[:max_warnings]
    if len(warnings) > max_warnings:
        out["warnings_more"] = len(warnings) - max_warnings
    out["n"] = len(positions)
    out["top"] = [[p["symbol"], r1(p["weight_pct"])] for p in positions[:top]]
    groups = [g for g in report.get("groups") or []
              if not g.get("within", True) or g.get("used_pct", 0) >= g.get("budget_pct", 0) / 2]
    if groups:
        out["groups"] = [[g["name"], r1(g["used_pct"]), g["budget_pct"]] for g in groups]
    clusters = sorted(report.get("clusters") or [], key=lambda c: -abs(c.get("net_pct") or 0.0))[:top]
    if clusters:
        out["clusters"] = [{"symbols": list(c["symbols"]), "net_pct": r1(c["net_pct"]), "direction": c["direction"],
                            "warning": c["warning"]} for c in clusters]
    return out
