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
