"""RPC round-trip benchmark: MMR RPC vs a bare pyzmq DEALER/ROUTER echo, measured in the same run.

Each server runs in its own child process (as services do); the client is this process. Rounds alternate
between the two so machine noise hits both alike. Prints median µs and calls/s for each and the ratio.

    .venv/bin/python bench/bench_rpc.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import zmq

PAYLOAD = b"x" * 32


def serve_bare() -> None:
    """Blocking ROUTER echo: the floor any framework on top of zmq is measured against."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        sock.send_multipart(sock.recv_multipart())


def serve_mmr() -> None:
    """An RPCServer with one sync echo method on an asyncio loop."""
    from trader.messaging.rpc import RPCServer, rpcmethod

    class Echo:
        @rpcmethod
        def echo(self, value: object) -> object:
            return value

    async def main() -> None:
        server = RPCServer(Echo())
        await server.start()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def spawn(kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def time_bare(port: int, calls: int) -> list[int]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
    samples = []
    for _ in range(calls):
        t0 = clock()
        send(PAYLOAD)
        recv()
        samples.append(clock() - t0)
    sock.close()
    return samples


def time_mmr(port: int, calls: int) -> list[int]:
    from trader.messaging.rpc import RPCClient

    client = RPCClient(f"tcp://127.0.0.1:{port}")
    echo = client.rpc().echo
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        t0 = clock()
        echo("hello")
        samples.append(clock() - t0)
    client.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=["bare", "mmr"], help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare()
        return
    if args.serve == "mmr":
        serve_mmr()
        return

    procs = []
    try:
        bare_proc, bare_port = spawn("bare")
        mmr_proc, mmr_port = spawn("mmr")
        procs = [bare_proc, mmr_proc]
        time_bare(bare_port, 2000)  # warm up connections, caches, CPU clocks
        time_mmr(mmr_port, 2000)
        bare: list[int] = []
        mmr: list[int] = []
        for _ in range(args.rounds):
            bare += time_bare(bare_port, args.calls)
            mmr += time_mmr(mmr_port, args.calls)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()

    bare_us = statistics.median(bare) / 1000
    mmr_us = statistics.median(mmr) / 1000
    print(f"calls per side: {len(bare)} ({args.rounds} rounds x {args.calls}), payload: small str")
    print(f"bare pyzmq DEALER/ROUTER echo: median {bare_us:7.1f} µs  {1e6 / bare_us:9.0f} calls/s")
    print(f"MMR RPC (RPCClient/RPCServer): median {mmr_us:7.1f} µs  {1e6 / mmr_us:9.0f} calls/s")
    print(f"ratio MMR/bare: {mmr_us / bare_us:.2f}x")


if __name__ == "__main__":
    main()
