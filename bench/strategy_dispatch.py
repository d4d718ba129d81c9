"""Live dispatch latency: bar close → strategies called → signals on the MessageBus → proposals stored.

20 strategies (the four examples, 5 parameter sets each) on 50 conIds of 1-minute bars, warmed up on WARM bars
each; then CLOSES bar closes, each closing one bar on all 50 conIds at once. The bus's subscriber is another
process (as live: an agent's `mmr listen`, the web page); "signals on the bus" is when it has read a close's last
signal (perf_counter is one clock for every process on Linux).

``--rpc`` (the figure issue 15 targets): strategy_service's own code, `LiveRunner.on_bars` (the runtime in its
dispatch thread, every signal published) then `LiveRunner._act` (the guards, the orders, ONE ``propose_batch``)
against a real trader_service on the simulated gateway (a temp install), which sizes, checks, previews the risk
gate and journals each order; "proposals stored" is the runner's own ``propose_ms`` (bars in → propose_batch
answered), the figure `mmr status` shows. The 50 symbols' ticks stream through trader_service first
(``subscribe_ticks``), as strategy_service's are; every strategy holds HELD shares of every conId (as after a day
of fills), so a FLAT signal proposes its closing leg, and the paper account holds them all (HELD × 20 shares of
each of the 50 stocks, bought through ``place_order`` before timing): every closing SELL is checked in full
(the gate's rules, the what-if on a 50-position book) and stored like an opening order. Nothing is approved
(auto_execute off).

``--ticks`` (with ``--rpc``): the runner also reads the 50 symbols' ticks from trader_service between and during
the closes (its own tick reader and a 1-minute bar builder, ~75 ticks/s from the simulated gateway), as
strategy_service does live; the bars built from them are dropped (the bench's bars are the ones dispatched).

Without ``--rpc``: the same dispatch, and the proposals stored by ONE `ProposalStore.insert_many` in this process
(what ``propose_batch`` does after its checks: one fsync'd journal commit; no RPC hop, no sizing).

    .venv/bin/python bench/strategy_dispatch.py [CLOSES] [--mode auto|bar-by-bar] [--rpc] [--ticks] [--gap SECONDS] [--all]

``--mode auto`` (default) runs MACrossover vectorized, as the backtester's auto mode does: its `signals_wide` once
per strategy and bar close over the 50 conIds' bars so far (`trader/strategy/wide_live.py`; each column is what
`signals()` gives that conId, checked), the other three classes (no `signals()`) bar by bar; ``--mode bar-by-bar``
runs every strategy's `on_prices` (deploy with ``--mode bar-by-bar``; the backtest to compare with is
``backtest --mode bar-by-bar``).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trader.config import StrategyEntry  # noqa: E402
from trader.data.events import EventStore  # noqa: E402
from trader.data.proposals import ProposalStore  # noqa: E402
from trader.data.store import STATE_SCHEMA, DuckStore  # noqa: E402
from trader.messaging.bus import MessageBusServer  # noqa: E402
from trader.strategy.models import Bar, describe  # noqa: E402
from trader.strategy.runtime import StrategyRuntime  # noqa: E402
from trader.trading.models import Action  # noqa: E402
from trader.trading.proposals import Proposal  # noqa: E402

STRATEGIES = [("ma_crossover.py", "MACrossover", {"FAST": f, "SLOW": 3 * f}) for f in (2, 3, 4, 5, 6)] + \
    [("rsi_mean_reversion.py", "RSIMeanReversion", {"PERIOD": p}) for p in (4, 6, 8, 10, 14)] + \
    [("keltner_breakout.py", "KeltnerBreakout", {"PERIOD": p, "MULT": 0.5}) for p in (5, 10, 15, 20, 25)] + \
    [("opening_range_breakout.py", "OpeningRangeBreakout", {"RANGE_BARS": r}) for r in (5, 10, 15, 20, 30)]
CONIDS = list(range(1000, 1050))
WARM = 300


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


async def main(closes: int, mode: str, trader: Any = None, gap: float = 0.0, show_all: bool = False,
               ticks: tuple[str, Any, list[str]] | None = None) -> None:
    root = Path(__file__).resolve().parents[1] / "strategies"
    rng = np.random.default_rng(7)
    n = WARM + closes
    idx = pd.date_range(datetime(2026, 1, 5, 14, 30, tzinfo=UTC), periods=n, freq="1min")
    paths = {c: 100 + np.cumsum(rng.normal(0, 0.3, n)) for c in CONIDS}
    load0 = os.getloadavg()
    t_warm = time.perf_counter()
    rt = StrategyRuntime(root)
    hist = {c: pd.DataFrame({"open": p[:WARM], "high": p[:WARM] + .2, "low": p[:WARM] - .2, "close": p[:WARM],
                             "volume": 1.0}, index=idx[:WARM]) for c, p in paths.items()}
    for i, (module, cls, params) in enumerate(STRATEGIES):
        entry = msgspec.convert({"name": f"s{i}", "module": module, "class": cls, "conids": CONIDS,
                                 "bar_size": "1 min", "params": params, "mode": mode}, StrategyEntry)
        rt.install(entry)
        rt.prime(entry.name, hist)
    t_warm = time.perf_counter() - t_warm
    tmp = Path(tempfile.mkdtemp())
    proposals = ProposalStore(DuckStore(tmp / "state.duckdb", STATE_SCHEMA))
    events = EventStore(DuckStore(tmp / "strategies.duckdb", STATE_SCHEMA))
    now0 = datetime.now(UTC)  # create the files (and the proposal journal) before timing, as a running service has
    proposals.insert_many([Proposal(id=0, symbol="X", action=Action.BUY, created_at=now0, quantity=1.0,
                                    updated_at=now0, request_id="bench-warm")])
    proposals.flush()
    events.append_many([("strategy_signal", {}, None, "bench")])
    dispatcher = ThreadPoolExecutor(1, thread_name_prefix="dispatch")
    writer = ThreadPoolExecutor(1, thread_name_prefix="writer")
    loop = asyncio.get_running_loop()
    bus = MessageBusServer("tcp://127.0.0.1:0", sweep_interval=0)
    await bus.start()
    sub = await _subscriber(bus.address)  # another process, as live (an agent's `mmr listen`, the web page)
    lines: list[bytes] = []  # read as they come: a full pipe would stall the subscriber and the bus drop signals
    reader = asyncio.create_task(_collect(sub, lines))
    stages: dict[str, list[float]] = {"strategies called": [], "signals on the bus": [], "proposals stored": []}
    closes_at: list[tuple[str, float, int]] = []  # (bar time, perf_counter at its close, signals)
    counts, cpu0 = [], time.process_time()
    cpu_ms: dict[str, list[float]] = {"strategies called": [], "proposals stored": []}
    flush_ms: list[float] = []  # the journal → DuckDB copy trader_service does in the background after storing
    wall0 = time.perf_counter()
    runner = None
    if trader is not None:  # the real code: strategy_service's LiveRunner on these strategies and this bus
        runner = _live_runner(rt, bus, trader, tmp)
        if ticks is not None:  # as live: the runner reads its conIds' ticks from trader_service between closes
            tick_task = _read_ticks(runner, *ticks)
        from trader.service import settle_heap

        settle_heap()  # as strategy_service does once started (and gc.freeze() again after installing strategies)
    for k in range(WARM, n):
        if gap and k > WARM:  # live 1-minute bars close 60 s apart: the previous close's background work is done
            await asyncio.sleep(gap)
        bars = [Bar(c, idx[k].to_pydatetime(), p[k], p[k] + .2, p[k] - .2, p[k], 1.0, 60) for c, p in paths.items()]
        if runner is not None:
            runner.clock.at = idx[k].to_pydatetime() + pd.Timedelta(minutes=1)  # the broker's now: this bar closed
            t0 = time.perf_counter()
            published = len(runner.dispatch_ms)
            sigs = await runner.on_bars(bars)  # the dispatch thread; the bus once `_act` has sent the proposals
            closes_at.append((idx[k].isoformat(), t0, len(sigs)))
            stored = len(runner.propose_ms)
            if sigs:
                runner._signals_q.get_nowait()  # `_act` is the next stage: called here, not by the queue's task
                await runner._act(sigs)  # guards, one propose_batch, then each proposal's approval decision
            while len(runner.dispatch_ms) == published:
                await asyncio.sleep(0)
            stages["strategies called"].append(runner.dispatch_ms[-1])  # (and their signals published)
            if len(runner.propose_ms) > stored:
                stages["proposals stored"].append(runner.propose_ms[-1])
            counts.append(len(sigs))
            continue
        t0 = time.perf_counter()
        sigs, cpu, _ = await loop.run_in_executor(dispatcher, _timed, lambda b=bars: rt.on_bars(b))
        cpu_ms["strategies called"].append(cpu)
        stages["strategies called"].append((time.perf_counter() - t0) * 1000)
        for s in sigs:
            bus.publish("signal", s)
        now = datetime.now(UTC)
        closes_at.append((idx[k].isoformat(), t0, len(sigs)))
        batch = [Proposal(id=0, symbol=f"C{s.con_id}", action=Action.BUY if s.target > 0 else Action.SELL,
                          created_at=now, quantity=1.0, reasoning=s.signal_id, updated_at=now,
                          request_id=f"{s.signal_id}-open") for s in sigs]
        # As live: the proposals do not wait for the bus's subscribers to have read the signals.
        _, cpu, done = await asyncio.to_thread(_timed, lambda b=batch: proposals.insert_many(b))
        cpu_ms["proposals stored"].append(cpu)
        stages["proposals stored"].append((done - t0) * 1000)  # when insert_many returned, not when awaited here
        counts.append(len(sigs))
        # As live: the signal events are written once the proposals are stored (`LiveRunner._held`).
        writer.submit(events.append_many, [("strategy_signal", describe(s), s.signal_id, "bench") for s in sigs])
        t1 = time.perf_counter()  # untimed by the stages: after the answer, as trader_service's background flush
        await asyncio.to_thread(proposals.flush)
        flush_ms.append((time.perf_counter() - t1) * 1000)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if runner is not None and ticks is not None:
        tick_task.cancel()
        print(f"  --ticks: the runner read {runner.ticks_read} ticks of the 50 symbols between and during the closes")
    stages["signals on the bus"] = await _read_subscriber(sub, reader, lines, closes_at)
    writer.shutdown(wait=True)
    dispatcher.shutdown()
    await bus.stop()
    load1 = os.getloadavg()
    print(f"strategy_dispatch (--mode {mode}, {gap:g} s between closes): {len(STRATEGIES)} strategies x {len(CONIDS)} conIds, warm-up "
          f"{WARM} bars each ({t_warm:.0f} s), {len(counts)} bar closes, {sum(counts)} signals "
          f"({statistics.mean(counts):.1f} per close, max {max(counts)})")
    print(f"  machine: {os.cpu_count()} cores, load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; "
          f"this process used {100 * cpu / wall:.0f}% of one core over the closes")
    for label, xs in stages.items():
        print(f"  bar close -> {label}: median {statistics.median(xs):.1f} ms, p99 {_pct(xs, 0.99):.1f} ms"
              + (f" (p99 without the first close {_pct(xs[1:], 0.99):.1f} ms)" if len(xs) > 2 else ""))
    for label, xs in ((k, v) for k, v in cpu_ms.items() if v):
        print(f"  CPU time of the stage '{label}' alone (its thread): median {statistics.median(xs):.1f} ms, "
              f"p99 {_pct(xs, 0.99):.1f} ms")
    if runner is not None:
        outcome: dict[str, int] = {}
        for e in runner.events.read(kind="strategy_order_refused", limit=100_000):
            why = e.payload.get("error") or e.payload.get("reason", "")[:40]
            outcome[f"{e.payload.get('stage')}: {why}"] = outcome.get(f"{e.payload.get('stage')}: {why}", 0) + 1
        made = len(runner.events.read(kind="strategy_proposal", limit=100_000))
        print(f"  --rpc: strategy_service's LiveRunner (on_bars, then _act: guards, one propose_batch) against "
              f"trader_service on the simulated gateway (sized, checked, risk-previewed, journaled); every strategy "
              f"holds {HELD:g} share(s) of every conId and the paper account all of them (so FLAT signals close, "
              f"checked in full); {made} proposals stored; refused: {dict(sorted(outcome.items())) or '-'}")
        runner.writer.shutdown(wait=True)
        runner.dispatcher.shutdown(wait=True)
    if flush_ms:
        print(f"  after each close, off the measured path: the journal's flush into DuckDB (background in trader_service): "
              f"median {statistics.median(flush_ms):.1f} ms, p99 {_pct(flush_ms, 0.99):.1f} ms")
    print("  target: p99 <= 50 ms (bar close -> proposals stored)")
    if show_all:
        print("  proposals stored, every close in order (ms):", [round(x) for x in stages["proposals stored"]])


SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "GOOG", "META", "TSLA", "AVGO", "JPM", "LLY", "V", "UNH", "XOM",
           "MA", "JNJ", "PG", "HD", "COST", "ABBV", "WMT", "NFLX", "BAC", "CRM", "KO", "ORCL", "CVX", "MRK", "AMD",
           "PEP", "ADBE", "LIN", "TMO", "ACN", "CSCO", "MCD", "ABT", "WFC", "DIS", "PM", "TXN", "GE", "INTU", "QCOM",
           "DHR", "VZ", "CAT", "AMGN", "IBM", "INTC"]  # 50 stocks the simulated gateway lists


HELD = 1.0  # shares every strategy holds of every conId in the bench (as after a day of fills)


class _BarClock:
    """The runner's feed clock, at the bench's current bar close (the guards' stale-bar check, "today")."""

    at = datetime(2026, 1, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def tick_time(self, received: datetime | None, trade: datetime | None = None) -> datetime:
        """A streamed tick's time (`--ticks`): the real clock's arithmetic, offset 0 (its bars are dropped)."""
        t = received if received is not None else datetime.now(UTC)
        return trade if trade is not None and trade > t else t


def _live_runner(rt: StrategyRuntime, bus: Any, trader: Any, tmp: Path) -> Any:
    """strategy_service's LiveRunner over the bench's runtime, bus and trader_service client (its loops not
    started: the bench calls its stages itself), every (strategy, conId) holding HELD shares."""
    from types import SimpleNamespace

    from trader.config import TraderConfig
    from trader.strategy.live import LiveRunner

    service = SimpleNamespace(config=TraderConfig(strategies_directory=str(rt.strategies_dir)),
                              paths=SimpleNamespace(data_dir=tmp, config_dir=tmp))
    runner = LiveRunner(service, bus=bus)
    runner.runtime, runner._trader, runner.clock = rt, trader, _BarClock()
    runner.symbols = {c: s for c, s in zip(CONIDS, SYMBOLS, strict=True)}  # streamed by trader_service already
    runner._subscribed = set(CONIDS)
    runner.caps.position = lambda strategy, con_id, **_: HELD  # type: ignore[method-assign]
    runner.record("strategy_state", {})  # the event store's file exists before timing, as a running service's
    runner.writer.submit(lambda: None).result()
    return runner


def _read_ticks(runner: Any, address: str, key: Any, topics: list[str]) -> asyncio.Task:
    """The runner's own tick reader (`LiveRunner._ticks`: parse, the broker's clock, a 1-minute `BarBuilder` per
    conId) on trader_service's PubSub, as strategy_service runs it; the bars it builds from the simulated gateway's
    ticks are counted and dropped (the bench's own bars are the ones dispatched)."""
    from trader.messaging.pubsub import AsyncSubscriber
    from trader.strategy.bars import BarBuilder

    runner._sub = AsyncSubscriber(address, topics=topics, key=key)
    runner.builders[60] = BarBuilder(60)
    runner.ticks_read = 0
    recv = runner._sub.recv

    async def counted(timeout: float | None = None) -> Any:
        got = await recv(timeout=timeout)
        runner.ticks_read += got is not None
        while not runner._bars_q.empty():  # nobody dispatches them here
            runner._bars_q.get_nowait()
        return got

    runner._sub.recv = counted
    return asyncio.get_running_loop().create_task(runner._ticks())


async def _with_platform(closes: int, mode: str, gap: float, show_all: bool, ticks: bool = False) -> None:
    """`main` with proposals sent to a real trader_service (and the simulated gateway) in a temp home."""
    from trader.messaging.rpc import AsyncRPCClient
    from trader.testing import running_platform

    with tempfile.TemporaryDirectory() as home, running_platform(Path(home), with_gateway=True,
                                                                 broker_ready=True) as p:
        trader = AsyncRPCClient(p.endpoint("trader_service"), timeout=60.0, key=p.client_key("operator"))
        try:
            # As live: strategy_service streams its strategies' conIds through trader_service (subscribe_ticks), so
            # propose_batch prices from those tickers instead of a snapshot request per symbol.
            subs = [await trader.call("subscribe_ticks", sym) for sym in SYMBOLS]
            await asyncio.sleep(2.0)  # the first ticks
            await _hold_everything(trader)
            await main(closes, mode, trader, gap, show_all,
                       (subs[0]["pub"], p.client_key("operator"), [sub["topic"] for sub in subs])
                       if ticks else None)
            batches = ((await trader.call("status")).details or {}).get("propose_batch") or {}
            print("  inside trader_service (its status, every propose_batch): " + "; ".join(
                f"{k} median {v['median']} ms, p99 {v['p99']} ms" for k, v in batches.items()))
        finally:
            trader.close()


async def _hold_everything(trader: Any) -> None:
    """The paper account buys what the strategies hold (HELD shares each, of every symbol), so their closing
    SELLs pass the holding check and are checked and stored in full, on a 50-position book. The order-rate
    limit (30 per 5 minutes by default) is raised for these 50 orders."""
    from trader.trading.models import Action
    from trader.trading.orders import OrderRequest

    await trader.call("risk_set", "max_orders_per_window", "200")
    for sym in SYMBOLS:
        await trader.call("place_order", OrderRequest(symbol=sym, action=Action.BUY,
                                                      quantity=HELD * len(STRATEGIES)), request_id=f"seed-{sym}")
    for _ in range(100):
        held = {p["symbol"] for p in await trader.call("positions") if p.get("quantity")}
        if held >= set(SYMBOLS):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the paper account holds {len(held)} of the {len(SYMBOLS)} symbols")


# The bus subscriber: prints each signal's bar time and when it read it (perf_counter is CLOCK_MONOTONIC on Linux,
# one clock for every process, so the bench subtracts its own close times from these).
_SUBSCRIBER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
import trader.strategy.models  # noqa: F401 - registers LiveSignal's wire type
from trader.messaging.bus import AsyncMessageBusClient

async def main():
    sub = AsyncMessageBusClient(sys.argv[1])
    await sub.subscribe("signal", timeout=5)
    print("ready", flush=True)
    while True:
        got = await sub.recv(timeout=None)
        print(got[1].bar_time.isoformat(), time.perf_counter(), flush=True)

asyncio.run(main())
"""


async def _subscriber(address: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _SUBSCRIBER, address,
                                                str(Path(__file__).resolve().parents[1]),
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    if (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() != b"ready":
        raise RuntimeError("the bus subscriber did not start")
    return proc


async def _collect(proc: asyncio.subprocess.Process, lines: list[bytes]) -> None:
    """Every line the subscriber prints, as it prints it."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        lines.append(line)


async def _read_subscriber(proc: asyncio.subprocess.Process, reader: asyncio.Task, lines: list[bytes],
                           closes_at: list[tuple[str, float, int]]) -> list[float]:
    """Per close, ms from the close until the subscriber had read its last signal (closes without signals: none)."""
    want = sum(n for _, _, n in closes_at)
    deadline = time.monotonic() + 30
    while len(lines) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    proc.kill()
    await proc.wait()
    reader.cancel()
    last: dict[str, float] = {}
    read: dict[str, int] = {}
    for line in lines:
        bar, at = line.decode().split()
        last[bar], read[bar] = max(last.get(bar, 0.0), float(at)), read.get(bar, 0) + 1
    assert all(read.get(bar, 0) == n for bar, _, n in closes_at), "the subscriber missed signals"
    return [(last[bar] - t0) * 1000 for bar, t0, n in closes_at if n]


def _timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``, the CPU milliseconds its thread spent (unlike wall time, not inflated by other processes) and the
    moment it returned (perf_counter)."""
    c0 = time.thread_time()
    out = fn()
    return out, (time.thread_time() - c0) * 1000, time.perf_counter()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("closes", nargs="?", type=int, default=100)
    ap.add_argument("--mode", choices=["auto", "bar-by-bar"], default="auto")
    ap.add_argument("--rpc", action="store_true", help="store through trader_service's propose_batch on the "
                    "simulated gateway (sizing, checks, risk preview, RPC hop) instead of ProposalStore directly")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between bar closes (default 0: back to back, "
                    "so each close also waits for the previous one's background flush; live 1-min closes are 60 s apart)")
    ap.add_argument("--all", action="store_true", help="also print every close's 'proposals stored' figure")
    ap.add_argument("--ticks", action="store_true", help="with --rpc: the runner also reads the 50 symbols' ticks "
                    "from trader_service (its own tick reader and bar builder), as strategy_service does live")
    a = ap.parse_args()
    asyncio.run(_with_platform(a.closes, a.mode, a.gap, a.all, a.ticks) if a.rpc else
                main(a.closes, a.mode, gap=a.gap, show_all=a.all))
