"""The cost of CURVE (encryption + per-request role check): the same platform with ``curve: true`` and ``false``.

Starts two installs (three services each, free ports, temp MMR_HOME), one per setting, and alternates between
them: ``mmr --json status`` as a fresh process N times (median, p90), one connect + handshake + ping (median ms,
what each CLI call pays once per service) and ``ping`` round trips on one connected RPCClient (median µs).

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


def _status(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "trader.mmr_cli", "--json", "status"], env=env,
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert json.loads(out.stdout)["all_up"], out.stdout
    return elapsed


def _connect_ping(plat: Platform) -> float:
    t0 = time.perf_counter()
    with plat.client("trader_service") as c:
        c.rpc().ping()
    return time.perf_counter() - t0


def _round_trips(plat: Platform, calls: int) -> list[float]:
    with plat.client("trader_service") as c:
        c.rpc().ping()
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            c.rpc().ping()
            out.append(time.perf_counter() - t0)
        return out


def measure(runs: int, calls: int) -> dict[bool, dict[str, float]]:
    """Both platforms up at once; runs alternate between them so machine noise hits both alike."""
    homes, plats = [], {}
    try:
        for curve in (False, True):
            home = Path(tempfile.mkdtemp(prefix="mmr_bench_curve_"))
            homes.append(home)
            plats[curve] = Platform(home, {**platform_env(home), "CURVE": "true" if curve else "false"})
            plats[curve].start()
        samples: dict[bool, dict[str, list[float]]] = {c: {"status": [], "connect": [], "rtt": []} for c in plats}
        for _ in range(runs):
            for curve, plat in plats.items():
                samples[curve]["status"].append(_status(plat.env))
                samples[curve]["connect"].append(_connect_ping(plat))
        for _ in range(5):
            for curve, plat in plats.items():
                samples[curve]["rtt"].extend(_round_trips(plat, calls // 5))
        results = {}
        for curve, s in samples.items():
            status = sorted(s["status"])
            results[curve] = {"status_median_ms": statistics.median(status) * 1000,
                              "status_p90_ms": status[int(0.9 * (len(status) - 1))] * 1000,
                              "connect_ping_median_ms": statistics.median(s["connect"]) * 1000,
                              "rtt_median_us": statistics.median(s["rtt"]) * 1e6}
        return results
    finally:
        for plat in plats.values():
            plat.stop()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    results = measure(args.runs, args.calls)
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
