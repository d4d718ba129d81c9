"""Soak: kill -9 trader_service many times at seeded points during approvals and orders, restart it, and check
the order-path invariants after every restart (`trader.testing_crash`; the CI test runs 3 kills).

Prints one JSON document: kills injected, kills that landed mid-action, actions, retries, faults injected,
foreign orders filled while trader_service was dead, invariant violations (must be 0) and double executions
(must be 0). Exit code 1 when any invariant was violated.

    .venv/bin/python bench/reliability_crash.py [--kills 30] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from trader.testing_crash import CrashHarness


def run(kills: int = 30, seed: int = 7, log: Any = None) -> dict[str, Any]:
    """Run ``kills`` seeded rounds (one kill each) in a temp MMR_HOME; return the figures."""
    with tempfile.TemporaryDirectory(prefix="mmr_crash_") as tmp, \
            CrashHarness(Path(tmp) / "home", seed, log=log) as h:
        stats = h.run(kills)
        h.check("final")
    return stats.to_dict()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    figures = run(args.kills, args.seed, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=1))
    return 1 if figures["violations"] or figures["double_executions"] else 0


if __name__ == "__main__":
    sys.exit(main())
