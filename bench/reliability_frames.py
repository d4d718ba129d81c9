"""Hostile frames against the real services, and a second client's latency while one client floods.

1. Starts an isolated platform (trader_service, data_service, strategy_service on free ports, 1 MB message
   limit), sends N seeded hostile frames (random, mutated, truncated, ~200-deep nested ext, oversized,
   multi-frame) to each RPC port and bus frames to the MessageBus, then checks every pid is unchanged and
   answers ``ping``.
2. Flood: client A sends 3,000 requests at once; client B pings in a loop until A has all its answers.
   Against a child-process RPCServer with a slow async handler (50 ms sleep) and a sync one (~0.2 ms CPU),
   and against the real trader_service (``status``, sync; ``proposals``, async, reads the store).

``run()`` returns the figures (the report script imports it)::

    .venv/bin/python bench/reliability_frames.py [--frames 400] [--flood 3000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from trader.messaging import codec
from trader.messaging.fuzz import bus_frames, nested_ext, rpc_frames
from trader.testing import SERVICES, Platform, running_platform

MESSAGE_LIMIT = 1024 * 1024


def serve_flood_target() -> None:
    """Child process: an RPCServer with a slow async handler, a sync one and ping (default limits)."""
    import asyncio

    from trader.messaging.rpc import RPCServer, rpcmethod

    class Target:
        @rpcmethod
        async def slow(self) -> str:
            await asyncio.sleep(0.05)
            return "slow"

        @rpcmethod
        def work(self) -> int:
            end = time.perf_counter() + 0.0002
            n = 0
            while time.perf_counter() < end:
                n += 1
            return n

        @rpcmethod
        def ping(self) -> str:
            return "pong"

    async def main() -> None:
        async with RPCServer(Target()) as server:
            print(server.port, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


def _dealer(address: str, key: Any = None) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)  # queue the whole flood
    if key is not None:
        key.apply(sock)
    sock.connect(address)
    return sock


def flood(address: str, method: str, n: int, key: Any = None, timeout: float = 120.0) -> dict[str, Any]:
    """Client A sends ``n`` calls of ``method`` at once; client B pings until A has every answer."""
    from trader.messaging.rpc import RPCClient

    with _dealer(address, key) as flooder, RPCClient(address, timeout=30, key=key) as other:
        other.call("ping")  # connected (and CURVE handshake done) before the clock starts
        t0 = time.perf_counter()
        for i in range(n):
            flooder.send(codec.packb({"i": i, "m": method, "a": [], "k": {}}))
        latencies: list[float] = []
        answers = {"ok": 0, "Busy": 0, "other": 0}
        got = 0
        while got < n and time.perf_counter() - t0 < timeout:
            start = time.perf_counter()
            other.call("ping")
            latencies.append((time.perf_counter() - start) * 1000)
            while flooder.poll(0):
                reply = codec.unpackb(flooder.recv())
                kind = "ok" if "r" in reply else reply["e"]["type"]
                answers[kind if kind in answers else "other"] += 1
                got += 1
        flood_s = time.perf_counter() - t0
    return {
        "method": method, "requests": n, "answered": got, "flood_seconds": round(flood_s, 3), **answers,
        "pings": len(latencies), "ping_p50_ms": round(statistics.median(latencies), 2),
        "ping_max_ms": round(max(latencies), 2),
    }


def fuzz_services(p: Platform, frames_per_port: int, seed: int = 13) -> dict[str, Any]:
    """Send hostile frames to every RPC port and the bus; count crashes and error answers."""
    rng = random.Random(seed)
    pids = {name: p.procs[name].pid for name in SERVICES}
    sent = answered = 0
    for name in SERVICES:
        hostile = [[nested_ext(200)]] + list(rpc_frames(rng, frames_per_port - 1, oversized=3 * MESSAGE_LIMIT))
        with _dealer(p.endpoint(name), p.client_key()) as raw:
            for message in hostile:
                raw.send_multipart(message)
            sent += len(hostile)
            for _ in hostile:
                if not raw.poll(10_000):
                    break
                raw.recv_multipart()
                answered += 1
        with _dealer(p.endpoint(name), p.client_key()) as raw:  # over 4x the limit: dropped by zmq
            raw.send(b"\0" * (5 * MESSAGE_LIMIT))
            sent += 1
    bus = f"tcp://127.0.0.1:{p.env['STRATEGY_BUS_PORT']}"
    with _dealer(bus, p.client_key("services")) as raw:
        junk = list(bus_frames(rng, frames_per_port, big=512 * 1024))
        t0 = time.perf_counter()
        for message in junk:
            raw.send_multipart(message)
        raw.send_multipart([b"ping", b"after"])
        while raw.poll(30_000) and raw.recv_multipart() != [b"pong", b"after"]:
            pass
        bus_ms = (time.perf_counter() - t0) * 1000
        sent += len(junk)
    crashes = sum(1 for name in SERVICES if p.procs[name].poll() is not None or p.procs[name].pid != pids[name])
    alive = 0
    for name in SERVICES:
        try:
            with p.client(name, timeout=5) as client:
                alive += client.call("ping") == "pong"
        except Exception:
            pass
    return {"frames_fuzzed": sent, "rpc_error_answers": answered, "service_crashes": crashes,
            "services_answering_ping": alive, "bus_junk_ms": round(bus_ms, 1)}


def run(frames_per_port: int = 400, flood_requests: int = 3000) -> dict[str, Any]:
    """Fuzz the real services and measure flood latency; return the figures."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mmr-frames-") as tmp:
        with running_platform(Path(tmp), MAX_MESSAGE_BYTES=str(MESSAGE_LIMIT)) as p:
            out.update(fuzz_services(p, frames_per_port))
            trader = p.endpoint("trader_service")
            key = p.client_key()
            floods = [flood(trader, "status", flood_requests, key), flood(trader, "proposals", flood_requests, key)]
            for f in floods:
                f["target"] = "trader_service"
            out["service_crashes"] += sum(1 for n in SERVICES if p.procs[n].poll() is not None)
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        address = f"tcp://127.0.0.1:{int(child.stdout.readline())}"
        for method in ("slow", "work"):
            f = flood(address, method, flood_requests)
            f["target"] = "RPCServer child process"
            floods.append(f)
    finally:
        child.kill()
        child.wait()
    out["floods"] = floods
    out["flood_p50_ms"] = max(f["ping_p50_ms"] for f in floods)
    out["flood_max_ms"] = max(f["ping_max_ms"] for f in floods)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400, help="hostile frames per port")
    parser.add_argument("--flood", type=int, default=3000, help="requests in each flood")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_flood_target()
    else:
        print(json.dumps(run(args.frames, args.flood), indent=2))
