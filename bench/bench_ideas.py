"""Benchmark: the idea scanner over a 100-symbol universe on the simulated gateway (target ≤ 10 s).

Starts the simulated gateway and the three services on free ports in a temp MMR_HOME, then times the
``ideas`` RPC (what ``mmr --json ideas`` calls) for 100 stocks of the simulator's universe: the first call
(contract details, 100 snapshots, 100 daily-bar requests) and a warm call (bars cached for the day), for every
preset; and the CLI end to end once (a fresh process, as an agent runs it). Prints the figures.

    .venv/bin/python bench/bench_ideas.py [--symbols 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

from trader.testing import mmr, running_platform
from trader.tools.presets import PRESETS


def sim_stocks(n: int) -> list[str]:
    """The first ``n`` US stocks of the simulator's contract list."""
    path = Path(__file__).resolve().parents[1] / "trader" / "sim" / "data" / "contracts.csv"
    with path.open() as f:
        return [r["symbol"] for r in csv.DictReader(f) if r["sec_type"] == "STK" and r["currency"] == "USD"][:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=100)
    args = ap.parse_args()
    symbols = sim_stocks(args.symbols)
    with tempfile.TemporaryDirectory(prefix="mmr_bench_ideas_") as home, \
            running_platform(Path(home), with_gateway=True, broker_ready=True) as p, \
            p.client("trader_service", timeout=120) as client:
        t0 = time.perf_counter()
        cold = client.rpc().ideas(preset="momentum", symbols=symbols, num=10)
        cold_s = time.perf_counter() - t0
        print(f"{len(symbols)} symbols, cold (resolve + snapshots + daily bars): {cold_s:.2f} s "
              f"(scanned {cold['scanned']}, passed {cold['passed']}, missing {cold.get('missing', {}).get('count', 0)})")
        if cold.get("missing"):  # a figure with symbols missing is not a 100-symbol scan: say why
            print(f"  missing, e.g.: {cold['missing']['first']}")
        for name in PRESETS:
            t0 = time.perf_counter()
            out = client.rpc().ideas(preset=name, symbols=symbols, num=10)
            print(f"  warm {name:<15} {time.perf_counter() - t0:5.2f} s  passed {out['passed']:3d}")
        t0 = time.perf_counter()
        res = mmr(p.env, "--json", "ideas", "breakout", "--tickers", ",".join(symbols), "--num", "10",
                  "--min-change", "-100", timeout=120)
        cli_s = time.perf_counter() - t0
        doc = json.loads(res.stdout)
        size = len(res.stdout)
        print(f"CLI `mmr --json ideas breakout` (10 ideas): {cli_s:.2f} s, {size} chars of JSON "
              f"(~{size // 4} tokens at 4 chars/token), {len(doc['ideas'])} ideas")


if __name__ == "__main__":
    main()
