"""The live runtime's pure core: bars once, parity with the backtester, states, isolation, guards, YAML edits."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from trader.config import StrategyEntry, TraderConfig
from trader.strategy.bars import BarBuilder, bar_seconds
from trader.strategy.dispatch import ConIdSlot, backtest_signals
from trader.strategy.guards import AutoExecGuard, is_live_account
from trader.strategy.loader import load_strategy_class
from trader.strategy.models import Bar, LiveSignal
from trader.strategy.runtime import StrategyRuntime, StrategyState
from trader.strategy.runtime_file import add_entry, read_entries, remove_entry, set_enabled

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def _bars(n: int = 1500, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(T0, periods=n, freq="1min", tz="UTC")
    c = 100 + np.cumsum(rng.normal(0, 0.2, n))
    return pd.DataFrame({"open": c + rng.normal(0, 0.05, n), "high": c + 0.2, "low": c - 0.2, "close": c,
                         "volume": 1000.0}, index=idx)


def test_bar_sizes() -> None:
    assert bar_seconds("5 secs") == 5 and bar_seconds("1 min") == 60 and bar_seconds("2 hours") == 7200
    with pytest.raises(ValueError):
        bar_seconds("fortnight")


def test_a_bar_is_emitted_once_late_ticks_dropped_gaps_noted() -> None:
    b = BarBuilder(60, grace=0.0)
    t = T0
    assert b.on_tick(1, t + timedelta(seconds=10), 100.0) == []
    assert b.on_tick(1, t + timedelta(seconds=5), 99.0) == []  # out of order inside the bar: it is the open
    assert b.on_tick(1, t + timedelta(seconds=50), 101.0) == []
    closed = b.close_due(t + timedelta(seconds=61))
    assert [(x.open, x.high, x.low, x.close, x.ticks) for x in closed] == [(99.0, 101.0, 99.0, 101.0, 3)]
    assert b.close_due(t + timedelta(seconds=120)) == []  # never twice
    assert b.on_tick(1, t + timedelta(seconds=59), 50.0) == []  # late: its bar is out already
    assert b.late_ticks == 1
    b.on_tick(1, t + timedelta(minutes=3, seconds=1), 102.0)  # minutes 1 and 2 had no tick
    nxt = b.on_tick(1, t + timedelta(minutes=4, seconds=1), 103.0)
    assert len(nxt) == 1 and nxt[0].time == t + timedelta(minutes=3) and nxt[0].gap_before == 2 and b.gaps == 2


@pytest.mark.parametrize("module", ["ma_crossover.py", "keltner_breakout.py", "rsi_mean_reversion.py",
                                    "opening_range_breakout.py"])
def test_live_signals_equal_backtest_signals(module: str) -> None:
    """History warm-up then bar-by-bar live dispatch gives the backtester's direction changes, in order."""
    df = _bars()
    cls = load_strategy_class(EXAMPLES, module)
    slot = ConIdSlot("s", cls(), 7)
    live = [(s.bar_time, s.action) for s in slot.warm_up(df.iloc[:600])]
    for ts, r in df.iloc[600:].iterrows():
        s = slot.on_live_bar(Bar(7, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60))
        if s is not None:
            assert not s.warmup and s.signal_id == f"sig-s-7-{int(ts.timestamp())}"
            live.append((s.bar_time, s.action))
    expected = backtest_signals(cls(), df)
    assert expected and live == expected


def _entry(name: str, module: str = "ma_crossover.py", cls: str = "MACrossover", **kw: object) -> StrategyEntry:
    return msgspec.convert({"name": name, "module": module, "class": cls, "conids": [7], "bar_size": "1 min", **kw},
                           StrategyEntry)


def test_states_and_a_crashing_strategy_is_isolated(tmp_path: Path) -> None:
    (tmp_path / "ma_crossover.py").write_text((EXAMPLES / "ma_crossover.py").read_text())
    (tmp_path / "boom.py").write_text(
        "from trader.strategy.api import Strategy\n\nclass Boom(Strategy):\n"
        "    def on_prices(self, prices):\n        if len(prices) > 3:\n            raise RuntimeError('kaboom')\n")
    rt = StrategyRuntime(tmp_path)
    assert rt.state("ma") is StrategyState.NOT_INSTALLED
    assert rt.install(_entry("ma", params={"FAST": 2, "SLOW": 4})).state is StrategyState.INSTALLED
    rt.install(_entry("boom", "boom.py", "Boom"))
    rt.install(_entry("missing", "nope.py", "X"))
    assert rt.state("missing") is StrategyState.ERROR and "nope.py" in rt.strategies["missing"].error
    rt.begin_history("ma")
    assert rt.state("ma") is StrategyState.WAITING_HISTORY
    df = _bars(10)
    rt.prime("ma", {7: df.iloc[:2]})
    rt.prime("boom", {})
    assert rt.state("ma") is StrategyState.RUNNING and rt.state("boom") is StrategyState.RUNNING
    for ts, r in df.iloc[2:].iterrows():
        rt.on_bar(Bar(7, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60))
    assert rt.state("boom") is StrategyState.ERROR and "kaboom" in rt.strategies["boom"].error
    assert rt.state("ma") is StrategyState.RUNNING and rt.strategies["ma"].bars_seen == 10
    last = df.index[-1].to_pydatetime()
    assert rt.on_bar(Bar(7, last, 1, 1, 1, 1, 0, 60)) == [] and rt.strategies["ma"].bars_seen == 10  # once only
    rt.disable("ma")
    assert rt.state("ma") is StrategyState.DISABLED
    assert rt.on_bar(Bar(7, last + timedelta(minutes=1), 1, 1, 1, 1, 0, 60)) == []
    assert rt.enable("ma").state is StrategyState.RUNNING
    rt.remove("ma")
    assert rt.state("ma") is StrategyState.NOT_INSTALLED


def _sig(target: int, *, age_bars: float = 1.0, warmup: bool = False, bar: int = 0) -> LiveSignal:
    t = datetime.now(UTC) - timedelta(seconds=60 * age_bars) + timedelta(minutes=bar)
    return LiveSignal(signal_id=f"sig-x-7-{bar}-{age_bars}", strategy="x", con_id=7, bar_time=t,
                      action={1: "BUY", 0: "FLAT", -1: "SELL"}[target], target=target, previous=0, price=10.0,
                      warmup=warmup)


def test_guards() -> None:
    now = datetime.now(UTC)
    g = AutoExecGuard(kill_switch=False, live_account=False, stale_bars=3)
    fresh = _sig(1)
    assert g.propose_refusal(fresh, now, 60) is None
    assert "duplicate" in g.propose_refusal(fresh, now, 60)
    assert "warm-up" in g.propose_refusal(_sig(1, warmup=True), now, 60)
    assert "stale" in g.propose_refusal(_sig(1, age_bars=10), now, 60)
    assert g.propose_refusal(_sig(0, age_bars=10, bar=1), now, 60) is None  # stale bars may still close
    auto = _entry("x", auto_execute=True, max_position=100, max_orders_per_day=2, cooldown_seconds=30)
    assert "auto_execute is off" in g.approve_refusal(_entry("x"), fresh, now, opening=True, position=0, quantity=1)
    assert g.approve_refusal(auto, fresh, now, opening=True, position=0, quantity=50) is None
    assert "max_position" in g.approve_refusal(auto, fresh, now, opening=True, position=60, quantity=50)
    g.note_order(auto, fresh, now)
    assert "cooldown" in g.approve_refusal(auto, fresh, now, opening=False, position=0, quantity=1)
    # the per-day cap counts by date: a fixed noon, so the test does not depend on the wall clock's hour
    # (at 00:03 "now - 5 min" is yesterday and the cap was not reached)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    gd = AutoExecGuard(kill_switch=False, live_account=False, stale_bars=3)
    gd.note_order(auto, fresh, noon - timedelta(minutes=5))
    gd.note_order(auto, fresh, noon)
    assert "max_orders_per_day" in gd.approve_refusal(auto, fresh, noon + timedelta(minutes=5), opening=False,
                                                      position=0, quantity=1)
    assert gd.approve_refusal(auto, fresh, noon + timedelta(days=1), opening=False, position=0, quantity=1) is None
    g2 = AutoExecGuard(kill_switch=True, live_account=False)
    assert "kill switch" in g2.approve_refusal(auto, fresh, now, opening=True, position=0, quantity=1)
    g3 = AutoExecGuard(kill_switch=False, live_account=True)
    assert "paper_only" in g3.approve_refusal(auto, fresh, now, opening=True, position=0, quantity=1)
    # live account: the second opt-in, and a validation of this exact source (or forced)
    live = _entry("x", auto_execute=True, paper_only=False)
    def refused(e: StrategyEntry, running: str = "abc") -> str | None:
        return g3.approve_refusal(e, fresh, now, opening=True, position=0, quantity=1, source_hash=running)
    assert "second opt-in" in refused(live)
    assert "no passing `backtests validate`" in refused(_with(live, live_trading=True))
    assert "file changed" in refused(_with(live, live_trading=True, validated_hash="old"))
    assert refused(_with(live, live_trading=True, validated_hash="abc")) is None
    assert refused(_with(live, live_trading=True, forced=True)) is None
    assert g.approve_refusal(live, fresh, now + timedelta(days=1), opening=True, position=0, quantity=1) is None
    assert is_live_account(TraderConfig(broker="ib", ib_server_port=4001))
    assert not is_live_account(TraderConfig(broker="ib", ib_server_port=4002))
    assert not is_live_account(TraderConfig(broker="sim"))


def _with(e: StrategyEntry, **kw: object) -> StrategyEntry:
    return msgspec.structs.replace(e, **kw)


def test_concurrent_yaml_edits_all_survive(tmp_path: Path) -> None:
    path = tmp_path / "strategy_runtime.yaml"
    errors: list[BaseException] = []

    def deploy(i: int) -> None:
        try:
            add_entry(path, {"name": f"s{i}", "module": "ma_crossover.py", "class": "MACrossover", "conids": [i]})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(s["name"] for s in read_entries(path)["strategies"]) == sorted(f"s{i}" for i in range(12))
    assert set_enabled(path, "s3", False)["enabled"] is False
    assert remove_entry(path, "s4")["name"] == "s4"
    names = {s["name"]: s for s in read_entries(path)["strategies"]}
    assert "s4" not in names and names["s3"]["enabled"] is False and len(names) == 11
    assert not list(tmp_path.glob("*.tmp"))
