"""LiveRunner's bar close → proposals path: the caps' fills are read from the store once, then kept current from
the fills trader_service publishes (no store round trip on a bar close), the close's events are written only once
its proposals are stored (the writer thread stays asleep meanwhile), nothing is lost when trader_service refuses
the batch, and ``propose_ms`` measures bars in → proposals stored."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec

from trader.config import StrategyEntry, TraderConfig
from trader.strategy.live import EVENT_REFUSED, EVENT_SIGNAL, LiveRunner
from trader.strategy.models import Bar, LiveSignal

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"


class FakeTrader:
    """trader_service's RPCs `_act` uses; ``log`` is (method, what the runner's store held at that moment)."""

    def __init__(self, runner: LiveRunner, *, refuse: bool = False) -> None:
        self.runner, self.refuse, self.log = runner, refuse, []

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        stored = len(self.runner.events.read(kind=EVENT_SIGNAL))
        self.log.append((method, stored))
        if method == "events":
            await asyncio.sleep(0.01)  # a round trip: overlaps the dispatch
            return []
        if method == "propose_batch":
            assert kwargs == {"brief": True}  # the runner reads only id, quantity and error
            if self.refuse:
                raise RuntimeError("trader_service is restarting")
            return [{"id": 10 + k, "quantity": 5.0, "state": "PENDING"} for k, _ in enumerate(args[0])]
        raise AssertionError(f"unexpected call {method}")

    def close(self) -> None:
        self.log.append(("close", None))


def _runner(tmp_path: Path, **trader: Any) -> tuple[LiveRunner, FakeTrader, list[Any]]:
    published: list[Any] = []
    service = SimpleNamespace(config=TraderConfig(strategies_directory=str(EXAMPLES)),
                              paths=SimpleNamespace(data_dir=tmp_path, config_dir=tmp_path))
    runner = LiveRunner(service, bus=SimpleNamespace(publish=lambda topic, obj: published.append((topic, obj))))
    entry = msgspec.convert({"name": "ma", "module": "ma_crossover.py", "class": "MACrossover", "conids": [7],
                             "bar_size": "1 min", "params": {"FAST": 2, "SLOW": 3}}, StrategyEntry)
    runner.runtime.install(entry)
    runner.runtime.prime("ma", {})
    runner.symbols[7] = "AAPL"
    runner._subscribed.add(7)
    runner._proposals = [{"strategy": "ma", "con_id": 7, "proposal_id": 1, "symbol": "AAPL"}]  # fills to read
    fake = FakeTrader(runner, **trader)
    runner._trader = fake
    return runner, fake, published


def _signal(now: datetime) -> LiveSignal:
    return LiveSignal(signal_id="sig-ma-7-1", strategy="ma", con_id=7, bar_time=now - timedelta(minutes=1),
                      action="BUY", target=1, previous=0, price=100.0)


def _close(runner: LiveRunner, k: int = 1) -> None:
    """One bar close through on_bars then `_act`, as the two stages run it; the writer drained after."""
    async def main() -> None:
        now = runner.clock.now()
        sig = dataclasses.replace(_signal(now), signal_id=f"sig-ma-7-{k}")
        runner._on_bars_sync = lambda bars: ([sig], [])  # the strategy's decision: the plumbing is under test
        signals = await runner.on_bars([Bar(7, now - timedelta(minutes=1), 1, 1, 1, 1, 1, 60)])
        assert signals == [sig] and runner._signals_q.get_nowait() == [sig]
        await runner._act(signals)
    asyncio.run(main())
    runner.writer.submit(lambda: None).result()


def test_the_store_is_read_once_and_events_wait_for_the_stored_proposals(tmp_path: Path) -> None:
    runner, fake, published = _runner(tmp_path)
    try:
        _close(runner, 1)
        _close(runner, 2)
        methods = [m for m, _ in fake.log]
        # fills and commissions from the store before the first batch only: then the published ones keep them
        assert methods == ["events", "events", "propose_batch", "propose_batch"]
        assert [n for m, n in fake.log if m == "propose_batch"] == [0, 1]  # each close's signal written after it
        assert [t for t, _ in published] == ["signal", "signal"]
        assert [e.payload["signal_id"] for e in runner.events.read(kind=EVENT_SIGNAL)] == ["sig-ma-7-1", "sig-ma-7-2"]
        assert [e.payload["proposal_id"] for e in runner.events.read(kind="strategy_proposal")] == [10, 10]
        assert len(runner.propose_ms) == 2 and min(runner.propose_ms) > 0 and not runner._held
    finally:
        runner.writer.shutdown(wait=True)
        runner.dispatcher.shutdown(wait=True)


def test_a_refused_batch_still_writes_the_signal_and_its_refusal(tmp_path: Path) -> None:
    runner, fake, _ = _runner(tmp_path, refuse=True)
    try:
        _close(runner)
        assert [e.payload["signal_id"] for e in runner.events.read(kind=EVENT_SIGNAL)] == ["sig-ma-7-1"]
        [refused] = runner.events.read(kind=EVENT_REFUSED)
        assert refused.payload["reason"] == "trader_service is restarting" and refused.payload["stage"] == "propose"
        assert runner.propose_ms == [] and not runner._held  # nothing stored: no latency to report
    finally:
        runner.writer.shutdown(wait=True)
        runner.dispatcher.shutdown(wait=True)


def test_published_fills_count_in_the_caps_at_once_and_once_only(tmp_path: Path) -> None:
    runner, _, _ = _runner(tmp_path)
    try:
        assert runner.caps.position("ma", 7) == 0
        fill = {"kind": "fill", "correlation_id": "proposal-1",
                "payload": {"exec_id": "e1.01", "side": "BOT", "shares": 4.0, "price": 100.0, "time": None}}
        runner._on_fill_event(fill)
        assert runner.caps.position("ma", 7) == 4.0  # proposal 1 is the strategy's: its fill counts now
        runner._on_fill_event(fill)  # the same execution again (the store's copy, or a resend): once only
        runner._on_fill_event({"kind": "fill", "correlation_id": "proposal-99", "payload": {"exec_id": "x"}})
        runner._on_fill_event({"kind": "nonsense"})  # malformed: ignored
        assert runner.caps.position("ma", 7) == 4.0
    finally:
        runner.writer.shutdown(wait=True)
        runner.dispatcher.shutdown(wait=True)


def test_events_held_for_a_batch_are_written_for_a_read_and_at_stop(tmp_path: Path) -> None:
    runner, _, _ = _runner(tmp_path)
    runner._held = True
    runner.record(EVENT_SIGNAL, {"signal_id": "x"})
    runner.writer.submit(lambda: None).result()
    assert runner.events.read(kind=EVENT_SIGNAL) == []  # held: the writer was not woken
    asyncio.run(runner.written())  # a read (`strategies signals`) has them written first
    assert [e.payload["signal_id"] for e in runner.events.read(kind=EVENT_SIGNAL)] == ["x"]
    runner.record(EVENT_SIGNAL, {"signal_id": "y"})  # still held
    runner.writer.submit(lambda: None).result()
    assert len(runner.events.read(kind=EVENT_SIGNAL)) == 1
    asyncio.run(runner.stop())
    assert [e.payload["signal_id"] for e in runner.events.read(kind=EVENT_SIGNAL)] == ["x", "y"]
