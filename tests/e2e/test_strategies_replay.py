"""A deployed strategy on a replayed day in the past (sim_source: replay) runs on the broker's clock (the feed
clock, trader/strategy/clock.py): warmed up on the stored bars before the replayed moment only, its live bars on
the replayed day's minutes, its signals those of its backtest on the same bars, and its orders not refused as
stale though the day is months old."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from trader.data.bars import BarStore, BarSymbol, remember_symbol
from trader.data.events import EventStore
from trader.data.store import STATE_SCHEMA, DuckStore
from trader.strategy.dispatch import backtest_signals
from trader.strategy.loader import load_strategy_class
from trader.testing import cli_ok, running_platform

from ..sim.test_replay import AAPL, DAY_OPEN, stored_day

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"
WARM = 30  # minutes of the replayed day stored before the replay starts: the warm-up history


def test_a_deployed_strategy_on_a_replayed_day_trades_as_its_backtest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    day = stored_day()
    store = BarStore.open(data)
    store.ingest(AAPL, "1 min", "test", day)
    remember_symbol(store, BarSymbol(AAPL, "AAPL"))
    strats = tmp_path / "strats"
    strats.mkdir()
    (strats / "ma_crossover.py").write_text((EXAMPLES / "ma_crossover.py").read_text())
    start = DAY_OPEN + timedelta(minutes=WARM)
    with running_platform(tmp_path, with_gateway=True, broker_ready=True, STRATEGIES_DIRECTORY=str(strats),
                          STRATEGY_RECONCILE_SECONDS="2", SIM_SPEED="60",
                          SIM_REPLAY_START=start.replace(tzinfo=None).isoformat()) as p:
        cli_ok(p, "strategies", "deploy", "ma", "--module", "ma_crossover.py", "--conids", str(AAPL),
             "--bar-size", "1 min", "--params", '{"FAST": 2, "SLOW": 3}', "--history-days", "1",
             "--auto-execute")
        deadline = time.monotonic() + 60  # a replayed minute per wall second
        while time.monotonic() < deadline:
            rows = {r["name"]: r for r in cli_ok(p, "strategies")}
            if rows.get("ma", {}).get("bars", 0) >= WARM + 15:
                break
            time.sleep(0.5)
        assert rows["ma"]["state"] == "RUNNING" and rows["ma"]["bars"] >= WARM + 15, rows
        with p.client("strategy_service", timeout=10) as c:
            frame = c.call("strategy_bars", "ma", AAPL)
            out = c.call("strategy_signals", "ma", 1000)

    # warmed up on the stored bars before the replayed moment, never on the ones after it
    hist = frame[frame.index < pd.Timestamp(start)]
    assert len(hist) >= WARM - 1 and hist.index[-1] == pd.Timestamp(start - timedelta(minutes=1)), hist.tail()
    assert list(hist.close) == list(day.loc[hist.index].close)
    live_part = frame[frame.index >= pd.Timestamp(start)]
    assert len(live_part) >= 5, frame.tail()
    # live bars on the replayed day's minutes (not the wall clock's), each minute once; at 60x one bar may close
    # while the strategy is still priming (about half a wall second), so at most one is missing, by its history
    assert set(live_part.index) <= set(day.index), frame.index
    gaps = [(a, b) for a, b in zip(frame.index[:-1], frame.index[1:], strict=True) if b - a != timedelta(minutes=1)]
    assert len(gaps) <= 1 and all(b - a == timedelta(minutes=2) for a, b in gaps), gaps

    cls = load_strategy_class(strats, "ma_crossover.py")
    last = frame.index[-1]
    expected = [(pd.Timestamp(t), a) for t, a in backtest_signals(cls().with_params(FAST=2, SLOW=3), frame)]
    # the warm-up on history decided the first of them (never traded), live bars the rest
    states = EventStore(DuckStore(data / "strategies.duckdb", STATE_SCHEMA)).read(kind="strategy_state")
    [warm] = [e.payload["warmup_signals"] for e in states if "warmup_signals" in e.payload]
    live = [(pd.Timestamp(datetime.fromisoformat(s["bar_time"])), s["action"]) for s in reversed(out["signals"])
            if not s.get("warmup")]
    assert len(live) >= 2 and [x for x in live if x[0] <= last] == expected[warm:], (warm, expected)
    # a replayed bar is not stale on the broker's clock: its signals were proposed and sent
    reasons = [d.get("reason") or "" for d in out["decisions"] if d["kind"] == "strategy_order_refused"]
    assert not [r for r in reasons if "stale" in r], reasons
    assert any(d["kind"] == "strategy_order" for d in out["decisions"]), out["decisions"]
