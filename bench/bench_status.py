"""Benchmark: `mmr --json status` wall time, end to end, with the services up.

Starts the three services on free ports in a temp MMR_HOME, runs the CLI as a fresh process N times (as an agent
does), and prints median / p90 wall time. Target: median <= 0.25 s.

    .venv/bin/python bench/bench_status.py [--runs 30]
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
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mmr_bench_"))
    plat = Platform(home, platform_env(home))
    mmr_bin = shutil.which("mmr", path=str(Path(sys.executable).parent)) or "mmr"
    try:
        plat.start()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run([mmr_bin, "--json", "status"], env=plat.env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            assert json.loads(out.stdout)["all_up"], out.stdout
        times.sort()
        med = statistics.median(times)
        p90 = times[int(0.9 * (len(times) - 1))]
        print(f"mmr --json status: runs={args.runs} median={med * 1000:.0f} ms p90={p90 * 1000:.0f} ms "
              f"min={times[0] * 1000:.0f} ms  (target median <= 250 ms: {'PASS' if med <= 0.25 else 'FAIL'})")
    finally:
        plat.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
