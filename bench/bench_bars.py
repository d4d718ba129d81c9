"""Bar store and history benchmark.

1. Ingest: 1M one-minute bars from a DataFrame into an empty ``bars.duckdb`` (bars/s), then the same 1M again
   (all duplicates: the idempotent path).
2. Read: 1M bars of one symbol back as a DataFrame (seconds), with 10 other symbols stored beside it.
3. ``history update`` work for a 100-symbol universe against the simulated gateway (in process): one
   request per symbol for the last day of 5-minute bars. By default the pacer runs with a fake clock, so
   the figure is the raw gateway + store throughput, and the time IB's pacing (60 requests / 10 min) would
   impose is computed from the pacer's waits; ``--paced`` uses the real clock (takes 10+ minutes).

    .venv/bin/python bench/bench_bars.py [--bars 1000000] [--symbols 100] [--paced]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ib_async import Stock

from trader.data.bars import BarStore
from trader.data.history import HistoryDownloader, RealClock


def frame(n: int, start: str = "2020-01-01") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="min", tz="UTC", name="ts")
    price = 100 + np.cumsum(np.random.default_rng(1).normal(0, 0.05, n))
    return pd.DataFrame({"open": price, "high": price + 0.1, "low": price - 0.1, "close": price,
                         "volume": 1000.0, "vwap": price, "bar_count": 10}, index=index)


def bench_store(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = BarStore.open(tmp)
        bars = frame(n)
        t = time.perf_counter()
        store.ingest(1, "1 min", "ib", bars)
        first = time.perf_counter() - t
        t = time.perf_counter()
        again = store.ingest(1, "1 min", "ib", bars)
        second = time.perf_counter() - t
        for conid in range(2, 12):
            store.ingest(conid, "1 min", "ib", frame(100_000))
        reads = []
        for _ in range(5):
            t = time.perf_counter()
            got = store.read(1, "1 min")
            reads.append(time.perf_counter() - t)
        assert len(got) == n and again == 0
        print(f"ingest {n:,} new bars: {first:.3f} s = {n / first:,.0f} bars/s")
        print(f"ingest {n:,} duplicate bars (idempotent): {second:.3f} s = {n / second:,.0f} bars/s")
        print(f"read {n:,} bars of one symbol (11 stored): median {sorted(reads)[2]:.3f} s, best {min(reads):.3f} s")


class _FastClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


async def bench_update(symbols: int, paced: bool) -> None:
    from trader.sim.testkit import START, connected

    contracts_csv = Path(__file__).parents[1] / "trader" / "sim" / "data" / "contracts.csv"
    with contracts_csv.open() as f:
        names = [r["symbol"] for r in csv.DictReader(f) if r["sec_type"] == "STK" and r["currency"] == "USD"]
    names = names[:symbols]
    with tempfile.TemporaryDirectory() as tmp:
        async with connected(Path(tmp)) as (_gw, ib):
            contracts = await ib.qualifyContractsAsync(*[Stock(s, "SMART", "USD") for s in names])
            clock = RealClock() if paced else _FastClock()
            dl = HistoryDownloader(ib, BarStore.open(Path(tmp) / "data"), clock=clock, now=lambda: START)
            t = time.perf_counter()
            total = 0
            for c in contracts:
                total += (await dl.download(c, "5 mins", START - dt.timedelta(hours=23))).bars_new
            elapsed = time.perf_counter() - t
    print(f"history update, {len(contracts)} symbols × 1 day of 5-min bars: {dl.requests} requests, "
          f"{total:,} bars, {elapsed:.2f} s wall = {dl.requests / elapsed:.1f} requests/s unpaced")
    print(f"  IB pacing (60 requests / 600 s) makes it {dl.pacer.waited + elapsed:.0f} s: "
          f"{dl.requests / (dl.pacer.waited + elapsed):.3f} requests/s against the limit of 0.100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--paced", action="store_true", help="real clock for pacing (slow: IB's real limits)")
    args = parser.parse_args()
    bench_store(args.bars)
    asyncio.run(bench_update(args.symbols, args.paced))


if __name__ == "__main__":
    main()
