"""Bars for backtests: stored bars (trader.data.bars) when present, else the deterministic simulated market."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

BAR_SECONDS = {"1 min": 60, "5 mins": 300, "15 mins": 900, "30 mins": 1800, "1 hour": 3600, "1 day": 86400}


def sim_bars(con_id: int, days: int, bar_size: str = "1 day", end: datetime | None = None,
             seed: int = 42) -> pd.DataFrame:
    """Deterministic bars from SimMarket.history_arrays (for demos and tests)."""
    from trader.sim.clock import SimClock
    from trader.sim.contracts import ContractUniverse
    from trader.sim.market import SimMarket

    end = end or datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    bs = BAR_SECONDS[bar_size]
    market = SimMarket(ContractUniverse.load(today=end.date()), SimClock(end, manual=True), seed=seed)
    a = market.history_arrays(con_id, end, int(days * 86400), bs)
    idx = pd.DatetimeIndex(pd.to_datetime(a["time"], unit="s", utc=True), name="ts")
    df = pd.DataFrame({k: a[k] for k in ("open", "high", "low", "close", "volume")}, index=idx)
    return df[df["close"] > 0]


def load_bars(con_id: int, days: int, bar_size: str = "1 day", data_dir: str | None = None) -> pd.DataFrame:
    """Stored bars of the last `days` days when the bar store has them, otherwise simulated bars."""
    if data_dir is not None:
        try:
            from trader.data.bars import BarStore

            df = BarStore.open(data_dir).read(con_id, bar_size,
                                              start=datetime.now(UTC) - timedelta(days=days))
            if len(df) >= 2:
                return df
        except Exception:  # noqa: BLE001 - an absent/empty store falls back to simulated bars
            pass
    return sim_bars(con_id, days, bar_size)


def _utc(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def load_bars_between(con_id: int, start: str | None, end: str | None, days: int, bar_size: str = "1 day",
                      data_dir: str | None = None) -> pd.DataFrame:
    """Bars for an explicit ISO date range (`start`/`end`; a missing `start` means `days` before `end`), from
    the bar store when it has them, else simulated bars ending at `end`. Without either bound this is
    `load_bars` (the last `days` days)."""
    if start is None and end is None:
        return load_bars(con_id, days, bar_size, data_dir)
    end_ts = _utc(end) if end else None
    start_ts = _utc(start) if start else None
    if data_dir is not None:
        try:
            from trader.data.bars import BarStore

            lo = start_ts or (end_ts or datetime.now(UTC)) - timedelta(days=days)
            df = BarStore.open(data_dir).read(con_id, bar_size, start=lo, end=end_ts)
            if len(df) >= 2:
                return df
        except Exception:  # noqa: BLE001 - an absent/empty store falls back to simulated bars
            pass
    sim_end = end_ts or datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    span = (sim_end - start_ts).total_seconds() / 86400 if start_ts else days
    return sim_bars(con_id, max(span, 1.0), bar_size, end=sim_end)  # type: ignore[arg-type]
