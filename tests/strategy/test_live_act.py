"""LiveRunner's bar close → proposals path: the caps' fills are read while the strategies run (no round trip of
`_act`'s own), the close's events are written only once its proposals are stored (the writer thread stays asleep
meanwhile), nothing is lost when trader_service refuses the batch, and ``propose_ms`` measures bars in →
proposals stored."""
from __future__ import annotations

import asyncio
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


def _close(runner: LiveRunner) -> None:
    """One bar close through on_bars then `_act`, as the two stages run it; the writer drained after."""
    async def main() -> None:
        now = runner.clock.now()
        sig = _signal(now)
        runner._on_bars_sync = lambda bars: ([sig], [])  # the strategy's decision: the plumbing is under test
        signals = await runner.on_bars([Bar(7, now - timedelta(minutes=1), 1, 1, 1, 1, 1, 60)])
        assert signals == [sig] and runner._signals_q.get_nowait() == [sig]
        await runner._act(signals)
    asyncio.run(main())
    runner.writer.submit(lambda: None).result()


def test_caps_are_read_during_dispatch_and_events_wait_for_the_stored_proposals(tmp_path: Path) -> None:
    runner, fake, published = _runner(tmp_path)
    try:
        _close(runner)
        methods = [m for m, _ in fake.log]
        assert methods == ["events", "events", "propose_batch"]  # fills and commissions once, before the batch
        assert dict(fake.log)["propose_batch"] == 0  # the signal's event was not written before it was proposed
        assert [t for t, _ in published] == ["signal"]
        assert [e.payload["signal_id"] for e in runner.events.read(kind=EVENT_SIGNAL)] == ["sig-ma-7-1"]
        assert [e.payload["proposal_id"] for e in runner.events.read(kind="strategy_proposal")] == [10]
        assert len(runner.propose_ms) == 1 and runner.propose_ms[0] > 0 and not runner._held
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


def test_events_held_for_a_batch_are_written_at_stop(tmp_path: Path) -> None:
    runner, _, _ = _runner(tmp_path)
    runner._held = True
    runner.record(EVENT_SIGNAL, {"signal_id": "x"})
    runner.writer.submit(lambda: None).result()
    assert runner.events.read(kind=EVENT_SIGNAL) == []  # held: the writer was not woken
    asyncio.run(runner.stop())
    assert [e.payload["signal_id"] for e in runner.events.read(kind=EVENT_SIGNAL)] == ["x"]
