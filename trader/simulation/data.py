"""Bars for backtests: stored bars (trader.data.bars) when present, else the deterministic simulated market.
Every frame says which in ``df.attrs["source"]`` (`data_source`), and the commands report it."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

SIM_END = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # where simulated model bars end (deterministic)
BAR_SECONDS = {"1 min": 60, "5 mins": 300, "15 mins": 900, "30 mins": 1800, "1 hour": 3600, "1 day": 86400}


def sim_bars(con_id: int, days: int, bar_size: str = "1 day", end: datetime | None = None,
             seed: int = 42) -> pd.DataFrame:
    """Deterministic bars from SimMarket.history_arrays (for demos and tests)."""
    from trader.sim.clock import SimClock
    from trader.sim.contracts import ContractUniverse
    from trader.sim.market import SimMarket

    end = end or SIM_END
    bs = BAR_SECONDS[bar_size]
    market = SimMarket(ContractUniverse.load(today=end.date()), SimClock(end, manual=True), seed=seed)
    a = market.history_arrays(con_id, end, int(days * 86400), bs)
    idx = pd.DatetimeIndex(pd.to_datetime(a["time"], unit="s", utc=True), name="ts")
    df = pd.DataFrame({k: a[k] for k in ("open", "high", "low", "close", "volume")}, index=idx)
    df = df[df["close"] > 0]
    c = market.contract(con_id)
    df.attrs["calendar"] = _calendar(c.sec_type, c.exchange, c.primary_exchange)
    return df


def _calendar(sec_type: str, exchange: str, primary_exchange: str) -> str:
    from trader.simulation.coverage import calendar_of

    return calendar_of(sec_type, exchange, primary_exchange)


def stored_calendar(con_id: int, data_dir: str) -> str:
    """The calendar of a stored conId's contract (`bar_symbols`, recorded by the history commands); XNYS when the
    store does not know it."""
    from trader.data.bars import BarStore

    rows = BarStore.open(data_dir).store.execute(
        "SELECT sec_type, exchange, primary_exchange FROM bar_symbols WHERE conid = ?", [int(con_id)], write=False)
    return _calendar(*rows[0]) if rows else "XNYS"


STORED, SIMULATED = "stored", "simulated"


def data_source(df: pd.DataFrame) -> str:
    """Where `load_bars`/`load_bars_between` took these bars from: "stored" or "simulated"."""
    return str(df.attrs.get("source", "unknown"))


def _tagged(df: pd.DataFrame, source: str, start: datetime | None = None, end: datetime | None = None
            ) -> pd.DataFrame:
    # The requested range travels with the bars so every result can say how much of it they cover.
    df.attrs["source"] = source
    if start is not None:
        df.attrs["requested_start"] = str(pd.Timestamp(start))
        df.attrs["requested_end"] = str(pd.Timestamp(end or datetime.now(UTC)))
    return df


def _stored(con_id: int, bar_size: str, data_dir: str | None, start: datetime, end: datetime | None = None,
            ) -> pd.DataFrame | None:
    # No stored bars → None (the caller falls back to simulated bars and says so). A store that cannot be
    # read (locked, corrupt) raises: silently backtesting on made-up prices would be worse than an error.
    if data_dir is None:
        return None
    from trader.data.bars import BarStore

    store = BarStore.open(data_dir)
    with store.store.connect(write=False):  # one store open for the bars and their contract's calendar
        df = store.read(con_id, bar_size, start=start, end=end)
        if len(df) < 2:
            return None
        df.attrs["calendar"] = stored_calendar(con_id, data_dir)
    return _tagged(df, STORED, start, end)


def load_bars(con_id: int, days: int, bar_size: str = "1 day", data_dir: str | None = None) -> pd.DataFrame:
    """Stored bars of the last `days` days when the bar store has them, otherwise simulated bars
    (`data_source(df)` tells which)."""
    stored = _stored(con_id, bar_size, data_dir, datetime.now(UTC) - timedelta(days=days))
    return stored if stored is not None else _tagged(sim_bars(con_id, days, bar_size), SIMULATED, SIM_END -
                                                     timedelta(days=days), SIM_END)


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
    stored = _stored(con_id, bar_size, data_dir, start_ts or (end_ts or datetime.now(UTC)) - timedelta(days=days),
                     end_ts)
    if stored is not None:
        return stored
    sim_end = end_ts or SIM_END
    span = (sim_end - start_ts).total_seconds() / 86400 if start_ts else days
    return _tagged(sim_bars(con_id, max(span, 1.0), bar_size, end=sim_end), SIMULATED,  # type: ignore[arg-type]
                   sim_end - timedelta(days=max(span, 1.0)), sim_end)


def source_report(bars: dict[int, pd.DataFrame], bar_size: str) -> tuple[dict[int, str], list[str]]:
    """Per conId, where its bars came from ("stored"/"simulated"), and the warnings of
    `trader.simulation.coverage.data_report`: simulated prices, simulated-gateway history, short coverage."""
    from trader.simulation.coverage import data_report

    sources = {int(c): data_source(df) for c, df in bars.items()}
    return sources, data_report(bars, bar_size)["warnings"]
