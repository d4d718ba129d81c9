"""Simulated IB Gateway speed, measured through an unmodified ib_async client.

    .venv/bin/python bench/bench_sim.py [--orders 400] [--contracts 100] [--seconds 5]

The gateway runs as its own process (``mmr-sim-gateway`` entry point, temp state dir, free port), the client
in this one — the way trader_service talks to it. Prints:

- place-to-fill latency of market orders (placeOrder → orderStatus Filled seen by ib_async), sequential;
- orders/s with many orders in flight (ib_async's own 45 req/s throttle switched off, as it is a client
  setting, not a gateway limit);
- ticks/s streamed to one client subscribed to `--contracts` contracts (speed-up clock so prices move).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(port: int, state_dir: str, speed: float, tick_interval: float) -> subprocess.Popen:
    code = (
        "import sys, asyncio, signal\n"
        "from trader.sim.gateway import SimGateway\n"
        "from trader.sim.clock import SimClock\n"
        "async def main():\n"
        f"    gw = SimGateway(port={port}, state_dir={state_dir!r}, clock=SimClock(speed={speed}),"
        f" tick_interval={tick_interval})\n"
        "    await gw.start()\n"
        "    stop = asyncio.Event()\n"
        "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)\n"
        "    print('ready', flush=True)\n"
        "    await stop.wait()\n"
        "    await gw.stop()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def bench_orders(port: int, n: int) -> None:
    from ib_async import IB, MarketOrder, Stock

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=10)
    ib.client.MaxRequests = 0
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    latencies = []
    for i in range(n):
        done = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        trade = ib.placeOrder(aapl, MarketOrder("BUY" if i % 2 == 0 else "SELL", 1))
        trade.filledEvent += lambda t, f=done: f.done() or f.set_result(time.perf_counter())
        latencies.append((await asyncio.wait_for(done, 10) - t0) * 1000)
    latencies.sort()
    print(f"market orders, sequential: n={n} median {statistics.median(latencies):.2f} ms, "
          f"p90 {latencies[int(0.9 * n)]:.2f} ms, max {latencies[-1]:.2f} ms, "
          f"{n / (sum(latencies) / 1000):.0f} orders/s")

    t0 = time.perf_counter()
    trades = [ib.placeOrder(aapl, MarketOrder("BUY" if i % 2 == 0 else "SELL", 1)) for i in range(n)]
    while not all(t.isDone() for t in trades):
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    print(f"market orders, {n} in flight: {n / elapsed:.0f} orders/s placed-to-filled ({elapsed:.2f} s)")
    ib.disconnect()


async def bench_ticks(port: int, n_contracts: int, seconds: float) -> None:
    from ib_async import IB, Stock

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=2, timeout=10)
    ib.client.MaxRequests = 0
    from trader.sim.contracts import ContractUniverse  # the first n US stocks of the simulator's universe

    universe = ContractUniverse.load()
    stocks = [c for c in universe if c.sec_type == "STK" and c.currency == "USD"][:n_contracts]
    contracts = await ib.qualifyContractsAsync(*[Stock(c.symbol, "SMART", "USD") for c in stocks])
    ticks = 0

    def count(tickers):
        nonlocal ticks
        ticks += sum(len(t.ticks) for t in tickers)

    for c in contracts:
        if c is not None:
            ib.reqMktData(c)
    await asyncio.sleep(1.0)  # initial images
    ib.pendingTickersEvent += count
    msgs0 = ib.client._numMsgRecv
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    msgs = ib.client._numMsgRecv - msgs0
    print(f"streaming to one client, {len(contracts)} contracts: {ticks / elapsed:,.0f} ticks/s "
          f"({msgs / elapsed:,.0f} messages/s)")
    ib.disconnect()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--orders", type=int, default=400)
    p.add_argument("--contracts", type=int, default=100)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as state:
        port = free_port()
        gw = start_gateway(port, state, speed=60.0, tick_interval=0.05)
        try:
            asyncio.run(bench_orders(port, args.orders))
            asyncio.run(bench_ticks(port, args.contracts, args.seconds))
        finally:
            gw.terminate()
            gw.wait(10)


if __name__ == "__main__":
    main()
