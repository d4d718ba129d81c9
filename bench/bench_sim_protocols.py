"""Simulated IB Gateway: place-to-fill latency of the official ``ibapi`` client per protocol version.

    .venv/bin/python bench/bench_sim_protocols.py [--orders 100] [--versions 178,200,226]

Runs the gateway in its own process (as bench/bench_sim.py does) and, for each version, connects the official
client offering v100..version: 178 and 200 speak the text protocol, 201+ binary ids and protobuf
(trader/sim/protobuf.py translates both ways through the official client's own code). Prints the median and p90
of placeOrder → orderStatus Filled for sequential market orders, so the cost of the protobuf path shows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim import free_port, start_gateway  # noqa: E402


def run(port: int, version: int, n: int) -> list[float]:
    """n sequential market orders through one official-client session; latencies in ms."""
    import ibapi.client
    from ibapi.client import EClient
    from ibapi.contract import Contract
    from ibapi.order import Order
    from ibapi.wrapper import EWrapper

    filled = threading.Event()
    ready = threading.Event()
    state = {"next": 0, "done": set()}

    class App(EWrapper, EClient):
        def __init__(self) -> None:
            EClient.__init__(self, self)

        def nextValidId(self, orderId: int) -> None:  # noqa: N802 - ibapi's callback names
            state["next"] = max(state["next"], orderId)
            ready.set()

        def orderStatus(self, orderId, status, *rest) -> None:  # noqa: N802
            if status == "Filled" and orderId not in state["done"]:
                state["done"].add(orderId)
                filled.set()

        def error(self, *args) -> None:
            pass

    saved, ibapi.client.MAX_CLIENT_VER = ibapi.client.MAX_CLIENT_VER, version
    try:
        app = App()
        app.connect("127.0.0.1", port, 30 + version % 50)
    finally:
        ibapi.client.MAX_CLIENT_VER = saved
    threading.Thread(target=app.run, daemon=True).start()
    ready.wait(10)
    contract = Contract()
    contract.conId, contract.symbol, contract.secType, contract.exchange, contract.currency = \
        265598, "AAPL", "STK", "SMART", "USD"
    out = []
    oid = state["next"]
    for i in range(n):
        order = Order()
        order.action, order.totalQuantity, order.orderType = "BUY" if i % 2 == 0 else "SELL", Decimal(1), "MKT"
        order.eTradeOnly = order.firmQuoteOnly = False
        filled.clear()
        t0 = time.perf_counter()
        app.placeOrder(oid + i, contract, order)
        if not filled.wait(10):
            raise RuntimeError(f"order {oid + i} not filled at v{version}")
        out.append((time.perf_counter() - t0) * 1000)
    got = app.serverVersion()
    app.disconnect()
    if got != version:
        raise RuntimeError(f"negotiated {got}, wanted {version}")
    return out


def main() -> None:
    """Print place-to-fill figures per protocol version."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--versions", default="178,200,226")
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_gateway(port, tmp, 1.0, 0.25)
        try:
            for version in (int(v) for v in args.versions.split(",")):
                lat = sorted(run(port, version, args.orders))
                print(f"ibapi v{version}: n={len(lat)} place-to-fill median {statistics.median(lat):.2f} ms, "
                      f"p90 {lat[int(0.9 * len(lat))]:.2f} ms")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
