"""Benchmark: `mmr --json buy AAPL --market --quantity 1` wall time, CLI to fill, on the simulated gateway.

Starts the simulated gateway and the three services on free ports in a temp MMR_HOME, waits until the broker
is ready, then runs the CLI as a fresh process N times (as an agent does) and checks each order filled.
Target: median <= 0.3 s.

    .venv/bin/python bench/bench_buy.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trader.testing import Platform, platform_env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mmr_bench_buy_"))
    plat = Platform(home, platform_env(home), with_gateway=True)
    mmr_bin = shutil.which("mmr", path=str(Path(sys.executable).parent)) or "mmr"
    try:
        plat.start()
        plat.wait_broker_ready()
        deadline = time.monotonic() + 30
        with plat.client("trader_service", timeout=5) as c:
            # Daily P&L arrives shortly after connect; the gate fails closed until it does.
            while c.rpc().status().details["account"].get("daily_pnl") is None and time.monotonic() < deadline:
                time.sleep(0.1)
        cmd = [mmr_bin, "--json", "buy", "AAPL", "--market", "--quantity", "1"]
        subprocess.run(cmd, env=plat.env, capture_output=True, text=True)  # warm the contract cache
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, env=plat.env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            doc = json.loads(out.stdout)
            assert doc.get("status") == "Filled", out.stdout
        times.sort()
        med = statistics.median(times)
        p90 = times[int(0.9 * (len(times) - 1))]
        print(f"mmr --json buy AAPL --market --quantity 1: runs={args.runs} median={med * 1000:.0f} ms "
              f"p90={p90 * 1000:.0f} ms min={times[0] * 1000:.0f} ms "
              f"(target median <= 300 ms: {'PASS' if med <= 0.3 else 'FAIL'})")
    finally:
        plat.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
