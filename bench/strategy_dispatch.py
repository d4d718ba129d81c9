"""Live dispatch latency: bar close → strategies called → signal on the MessageBus → proposal stored.

20 strategies (the four examples, 5 parameter sets each) on 50 conIds of 1-minute bars, warmed up on 300 bars
each; then 200 bar closes, each closing one bar on all 50 conIds at once. Per close the figure is the time from
handing the 50 bars to the runtime until every signal they caused has arrived at a bus subscriber and a
PENDING proposal for it is stored in DuckDB (`ProposalStore.insert`, as trader_service's `propose` does).
Not measured here: the RPC hop to trader_service and its sizing (see bench/order_path for those).

    .venv/bin/python bench/strategy_dispatch.py          # prints median / p99 (target p99 <= 50 ms)
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trader.config import StrategyEntry  # noqa: E402
from trader.data.proposals import ProposalStore  # noqa: E402
from trader.data.store import STATE_SCHEMA, DuckStore  # noqa: E402
from trader.messaging.bus import AsyncMessageBusClient, MessageBusServer  # noqa: E402
from trader.strategy.models import Bar  # noqa: E402
from trader.strategy.runtime import StrategyRuntime  # noqa: E402
from trader.trading.models import Action  # noqa: E402
from trader.trading.proposals import Proposal  # noqa: E402

STRATEGIES = [("ma_crossover.py", "MACrossover", {"FAST": f, "SLOW": 3 * f}) for f in (2, 3, 4, 5, 6)] + \
    [("rsi_mean_reversion.py", "RSIMeanReversion", {"PERIOD": p}) for p in (4, 6, 8, 10, 14)] + \
    [("keltner_breakout.py", "KeltnerBreakout", {"PERIOD": p, "MULT": 0.5}) for p in (5, 10, 15, 20, 25)] + \
    [("opening_range_breakout.py", "OpeningRangeBreakout", {"RANGE_BARS": r}) for r in (5, 10, 15, 20, 30)]
CONIDS = list(range(1000, 1050))
WARM, CLOSES = 300, int(sys.argv[1]) if len(sys.argv) > 1 else 30


async def main() -> None:
    root = Path(__file__).resolve().parents[1] / "strategies"
    rng = np.random.default_rng(7)
    n = WARM + CLOSES
    idx = pd.date_range(datetime(2026, 1, 5, 14, 30, tzinfo=UTC), periods=n, freq="1min")
    paths = {c: 100 + np.cumsum(rng.normal(0, 0.3, n)) for c in CONIDS}
    rt = StrategyRuntime(root)
    for i, (module, cls, params) in enumerate(STRATEGIES):
        entry = msgspec.convert({"name": f"s{i}", "module": module, "class": cls, "conids": CONIDS,
                                 "bar_size": "1 min", "params": params}, StrategyEntry)
        rt.install(entry)
        hist = {c: pd.DataFrame({"open": p[:WARM], "high": p[:WARM] + .2, "low": p[:WARM] - .2, "close": p[:WARM],
                                 "volume": 1.0}, index=idx[:WARM]) for c, p in paths.items()}
        rt.prime(entry.name, hist)
    tmp = Path(tempfile.mkdtemp())
    proposals = ProposalStore(DuckStore(tmp / "state.duckdb", STATE_SCHEMA))
    bus = MessageBusServer("tcp://127.0.0.1:0", sweep_interval=0)
    await bus.start()
    sub = AsyncMessageBusClient(bus.address)
    await sub.subscribe("signal", timeout=5)
    lat_bus, lat_first, lat_all, counts = [], [], [], []
    for k in range(WARM, n):
        t0 = time.perf_counter()
        bars = [Bar(c, idx[k].to_pydatetime(), p[k], p[k] + .2, p[k] - .2, p[k], 1.0, 60) for c, p in paths.items()]
        sigs = [s for b in bars for s in rt.on_bar(b)]
        for s in sigs:
            bus.publish("signal", s)
        for _ in sigs:
            await sub.recv(timeout=5)
        lat_bus.append((time.perf_counter() - t0) * 1000)
        now = datetime.now(UTC)
        for j, s in enumerate(sigs):
            await asyncio.to_thread(proposals.insert, Proposal(
                id=0, symbol=f"C{s.con_id}", action=Action.BUY if s.target > 0 else Action.SELL, created_at=now,
                quantity=1.0, reasoning=s.signal_id, updated_at=now))
            if j == 0:
                lat_first.append((time.perf_counter() - t0) * 1000)
        lat_all.append((time.perf_counter() - t0) * 1000)
        counts.append(len(sigs))
    await bus.stop()
    sub.close()
    print(f"strategy_dispatch: {len(STRATEGIES)} strategies x {len(CONIDS)} conIds, {len(counts)} bar closes, "
          f"{sum(counts)} signals ({statistics.mean(counts):.1f} per close)")
    for label, xs in (("bar close -> all signals on the bus", lat_bus),
                      ("bar close -> first proposal stored", lat_first),
                      ("bar close -> every proposal stored (serial DuckDB inserts)", lat_all)):
        xs = sorted(xs)
        print(f"  {label}: median {statistics.median(xs):.1f} ms, p99 {xs[int(0.99 * (len(xs) - 1))]:.1f} ms")
    print("  target: p99 <= 50 ms")

if __name__ == "__main__":
    asyncio.run(main())
