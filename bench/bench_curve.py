"""The cost of CURVE (encryption + per-request role check): the same platform with ``curve: true`` and ``false``.

For each setting: starts the three services on free ports in a temp MMR_HOME, runs ``mmr --json status`` as a
fresh process N times (median, p90), then times N ``ping`` round trips on one connected RPCClient (median µs),
and one connect + handshake + ping (median ms, what each CLI call pays once per service).

    .venv/bin/python bench/bench_curve.py [--runs 20] [--calls 2000]
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


def measure(curve: bool, runs: int, calls: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="mmr_bench_curve_"))
    env = {**platform_env(home), "CURVE": "true" if curve else "false"}
    plat = Platform(home, env)
    try:
        plat.start()
        status = []
        for _ in range(runs):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "trader.mmr_cli", "--json", "status"], env=env,
                                 capture_output=True, text=True)
            status.append(time.perf_counter() - t0)
            assert json.loads(out.stdout)["all_up"], out.stdout
        connects = []
        for _ in range(runs):
            t0 = time.perf_counter()
            with plat.client("trader_service") as c:
                c.rpc().ping()
            connects.append(time.perf_counter() - t0)
        with plat.client("trader_service") as c:
            c.rpc().ping()
            rtt = []
            for _ in range(calls):
                t0 = time.perf_counter()
                c.rpc().ping()
                rtt.append(time.perf_counter() - t0)
        status.sort()
        return {"status_median_ms": statistics.median(status) * 1000,
                "status_p90_ms": status[int(0.9 * (len(status) - 1))] * 1000,
                "connect_ping_median_ms": statistics.median(connects) * 1000,
                "rtt_median_us": statistics.median(rtt) * 1e6}
    finally:
        plat.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    results = {curve: measure(curve, args.runs, args.calls) for curve in (False, True)}
    for curve, r in results.items():
        print(f"curve={'on ' if curve else 'off'}  mmr --json status median {r['status_median_ms']:.0f} ms "
              f"(p90 {r['status_p90_ms']:.0f})  connect+ping {r['connect_ping_median_ms']:.2f} ms  "
              f"ping round trip {r['rtt_median_us']:.0f} µs")
    off, on = results[False], results[True]
    print(f"CURVE cost: status {on['status_median_ms'] - off['status_median_ms']:+.0f} ms, connect "
          f"{on['connect_ping_median_ms'] - off['connect_ping_median_ms']:+.2f} ms, round trip "
          f"{on['rtt_median_us'] - off['rtt_median_us']:+.0f} µs")


if __name__ == "__main__":
    main()
