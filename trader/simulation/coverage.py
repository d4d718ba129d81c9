"""What a backtest's bars are worth: their provenance and how much of the asked-for range they cover.

Provenance (per conId, and for a run the least trustworthy of its conIds):
- ``vendor_history``: bars a real data vendor served (`history ib` against a real IB gateway, `history massive`);
- ``simulated_gateway_history``: bars `history ib` downloaded from MMR's simulated gateway (source ``ib_sim``);
- ``simulated_model``: no stored bars, so the backtester generated prices from the simulated market model.
Only vendor history says anything about the market (`require_stored_bars` in promotion.yaml needs it).

Coverage: the bars present against the bars the contract's own calendar expects between the requested start and
end (regular hours; the simulated gateway's calendars: stocks and futures their exchange's, FX 24×5, crypto 24×7;
XNYS when the contract is unknown). A result on 6 bars of an asked-for year is flagged in every output.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

VENDOR, SIM_GATEWAY, SIM_MODEL, UNKNOWN = ("vendor_history", "simulated_gateway_history", "simulated_model",
                                           "unknown")
# Worst first: a run is as trustworthy as its least trustworthy conId.
_RANK = {SIM_MODEL: 0, SIM_GATEWAY: 1, UNKNOWN: 2, VENDOR: 3}
SIM_GATEWAY_SOURCES = frozenset({"ib_sim"})
# Below this share of the calendar's expected bars a result is flagged.
MIN_COVERAGE = 0.9


def provenance_of_sources(sources: set[str] | list[str], simulated: bool = False) -> str:
    """Provenance of one conId's bars from the bar store's `source` values (or ``simulated`` model bars)."""
    if simulated:
        return SIM_MODEL
    names = {str(s) for s in sources}
    if not names:
        return UNKNOWN
    return SIM_GATEWAY if names & SIM_GATEWAY_SOURCES else VENDOR


def worst(provenances: list[str]) -> str:
    """The least trustworthy of several provenances (a run's provenance from its conIds')."""
    return min(provenances, key=lambda p: _RANK.get(p, _RANK[UNKNOWN])) if provenances else UNKNOWN


def frame_provenance(df: pd.DataFrame) -> str:
    """Provenance of a frame from `trader.simulation.data` (its ``source`` attr and per-bar ``source`` column)."""
    if df.attrs.get("source") == "simulated":
        return SIM_MODEL
    if "source" in df.columns:
        return provenance_of_sources(set(df["source"].dropna().unique()))
    return provenance_of_sources(df.attrs.get("bar_sources") or [])


@dataclass(frozen=True, slots=True)
class Coverage:
    """Bars present vs expected by the exchange calendar over the requested range of one conId."""

    con_id: int
    requested_start: str
    requested_end: str
    first_bar: str | None
    last_bar: str | None
    expected_bars: int
    present_bars: int
    ratio: float  # present / expected (1.0 when nothing was expected)
    ok: bool
    calendar: str = "XNYS"  # the contract's own (`calendar_of`)


def calendar_of(sec_type: str = "STK", exchange: str = "SMART", primary_exchange: str = "") -> str:
    """The calendar a contract trades on — the simulated gateway's rule (`trader.sim.clock.TradingCalendar`):
    FX 24×5 (``FX24x5``), crypto 24×7 (``24x7``), futures and stocks their exchange's (XNYS, CMES, XETR …)."""
    from trader.sim.clock import TradingCalendar

    return TradingCalendar("exchange").calendar_name(exchange or "", primary_exchange or "", sec_type or "")


def _sessions(calendar: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Regular session [open, close) bounds as epoch seconds covering [start, end] (the gateway's calendars,
    built once per process and window)."""
    import pandas as pd

    from trader.sim.clock import TradingCalendar

    today = pd.Timestamp.now(tz="UTC")
    cal = TradingCalendar("exchange", years_back=max(1, today.year - start.year + 1),
                          years_ahead=max(1, end.year - today.year + 1))
    return _stored_sessions(cal, calendar)


def _stored_sessions(cal: Any, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """`cal.sessions(calendar)`'s (open, close), kept in the user's cache directory per calendar, window and
    exchange_calendars version: building an exchange calendar costs a fresh process ~0.5 s, paid by every
    `backtest` and `bt-sweep` for its coverage line. The same arrays either way (int64 round trip)."""
    import hashlib
    import os
    from importlib.metadata import PackageNotFoundError, version

    from trader.config import cache_dir

    try:
        xcals = version("exchange_calendars")
    except PackageNotFoundError:
        xcals = "none"
    key = hashlib.sha256(f"{calendar}|{cal._start}|{cal._end}|{xcals}".encode()).hexdigest()[:20]
    path = cache_dir() / f"sessions_{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["open"], z["close"]
    except (OSError, ValueError, KeyError):  # not cached yet (or a torn file): build and store it
        pass
    s = cal.sessions(calendar)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, open=s.open, close=s.close)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old state or the whole file
    except OSError:  # a read-only home: just not cached
        pass
    return s.open, s.close


def _session_labels(closes: np.ndarray) -> np.ndarray:
    # A session's date is the UTC date its close falls on (XNYS, FX 17:00 New York, 24x7 UTC days, Tokyo …).
    return (closes - 1) // 86400


def _slots(start: pd.Timestamp, end: pd.Timestamp, bar_seconds: int, calendar: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The calendar's sessions (open, close as epoch s) and the slots it expects in [start, end): session
    dates (epoch days) for daily bars, every regular-hours bar start (epoch s) for intraday ones."""
    opens, closes = _sessions(calendar, start, end)
    t0, t1 = int(start.value // 10**9), int(end.value // 10**9)
    if bar_seconds >= 86400:
        keep = (closes > t0) & (closes <= t1 + 86400)
        return opens, closes, _session_labels(closes[keep])
    keep = (closes > t0) & (opens < t1)
    o, c = opens[keep], closes[keep]
    counts = -(-(c - o) // bar_seconds)
    if not counts.sum():
        return opens, closes, np.empty(0, dtype=np.int64)
    first = np.repeat(o, counts)
    step = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = first + step * bar_seconds
    return opens, closes, slots[(slots >= t0) & (slots < t1)]


def measure(con_id: int, index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp, bar_size: str,
            calendar: str = "XNYS") -> Coverage:
    """Coverage of one conId's bar index over [start, end): how many of the expected bars of its `calendar`
    (`calendar_of`; an exchange name such as NYSE is mapped too) exist."""
    import pandas as pd

    from trader.data.gaps import _BAR_SECONDS, calendar_for

    secs = _BAR_SECONDS.get(bar_size, 86400)
    name = calendar if calendar in ("FX24x5", "24x7") else calendar_for(calendar)
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    opens, closes, expected = _slots(start, end, secs, name)
    idx = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    stamps = idx.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    if secs >= 86400:
        # Daily bars are stamped with their session date (midnight UTC) or a time inside their session.
        midnight = stamps % 86400 == 0
        k = np.searchsorted(opens, stamps, side="right") - 1
        inside = _session_labels(closes[np.clip(k, 0, max(len(closes) - 1, 0))]) if len(closes) else stamps // 86400
        have = np.where(midnight | (k < 0), stamps // 86400, inside)
    else:
        have = stamps
    present = int(np.isin(expected, have).sum())
    ratio = present / len(expected) if len(expected) else 1.0
    return Coverage(int(con_id), str(start), str(end), str(idx[0]) if len(idx) else None,
                    str(idx[-1]) if len(idx) else None, len(expected), present, round(ratio, 4),
                    ratio >= MIN_COVERAGE, name)


def frame_coverage(con_id: int, df: pd.DataFrame, bar_size: str) -> Coverage | None:
    """Coverage of a frame loaded by `trader.simulation.data` (None when it carries no requested range)."""
    import pandas as pd

    start, end = df.attrs.get("requested_start"), df.attrs.get("requested_end")
    if start is None or end is None:
        return None
    return measure(con_id, df.index, pd.Timestamp(start), pd.Timestamp(end), bar_size,
                   df.attrs.get("calendar") or "XNYS")


def coverage_warning(c: Coverage | dict[str, Any], bar_size: str) -> str | None:
    """The warning for a short coverage (None when it is fine)."""
    d = asdict(c) if isinstance(c, Coverage) else c
    if d.get("ok", True):
        return None
    return (f"conId {d['con_id']}: only {d['present_bars']} of {d['expected_bars']} expected {bar_size} bars "
            f"on the {d.get('calendar', 'XNYS')} calendar ({d['ratio']:.0%}) between {str(d['requested_start'])[:10]} and {str(d['requested_end'])[:10]} "
            f"(first bar {str(d['first_bar'])[:19]}, last {str(d['last_bar'])[:19]}): the results cover only part "
            "of the range (download the rest with `mmr history ib` or `history massive`)")


def provenance_warning(con_id: int, provenance: str) -> str | None:
    """The warning for bars that are not vendor history (None for vendor history)."""
    if provenance == SIM_MODEL:
        return (f"conId {con_id}: no stored bars for this range, so these results use SIMULATED prices from the "
                "simulated market model (download real ones with `mmr history ib --symbol …` or `history massive`)")
    if provenance == SIM_GATEWAY:
        return (f"conId {con_id}: these bars were downloaded from the SIMULATED gateway (broker: sim), not a real "
                "market: the results say nothing about the market")
    return None


def data_report(bars: dict[int, pd.DataFrame], bar_size: str) -> dict[str, Any]:
    """Provenance and coverage of a backtest's bars: ``provenance`` (the run's), ``per_conid`` provenance,
    ``coverage`` (one dict per conId with a requested range) and every ``warnings`` line."""
    per = {int(c): frame_provenance(df) for c, df in bars.items()}
    cov = [c for c in (frame_coverage(int(k), df, bar_size) for k, df in bars.items()) if c is not None]
    warnings = [w for c, p in per.items() if (w := provenance_warning(c, p))]
    warnings += [w for c in cov if (w := coverage_warning(c, bar_size))]
    return {"provenance": worst(list(per.values())), "per_conid": per, "coverage": [asdict(c) for c in cov],
            "warnings": warnings}


def coverage_summary(coverage: list[dict[str, Any]] | None) -> float | None:
    """The lowest coverage ratio over a run's conIds (None when unknown), for lists."""
    ratios = [float(c["ratio"]) for c in coverage or [] if c.get("ratio") is not None]
    return min(ratios) if ratios else None


def run_warnings(run: dict[str, Any]) -> list[str]:
    """The data warnings of a stored run (`trader.simulation.store.get_run`): its provenance and short coverage."""
    out = []
    prov = run.get("provenance") or UNKNOWN
    if prov in (SIM_MODEL, SIM_GATEWAY):
        out.append(f"data: {prov}: SIMULATED prices, the results say nothing about the market")
    elif prov == UNKNOWN:
        out.append("data: provenance unknown (a run stored before provenance was recorded)")
    out += [w for c in run.get("coverage") or [] if (w := coverage_warning(c, run.get("bar_size", "")))]
    return out
