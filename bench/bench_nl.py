"""`mmr nl TEXT` on the simulated gateway: parse + resolve + risk-gate preview (issue 18; target ≤ 2 s).

Starts the simulated gateway and the three services on free ports in a temp MMR_HOME, then runs
`mmr --json nl TEXT` as a fresh process per command (as an agent does). Prints, per kind of order, the
command's own ``elapsed_ms`` (parse + contract resolution + the gate's what-if, measured in the CLI process)
and the wall time of the whole process (interpreter start and imports included).

    .venv/bin/python bench/bench_nl.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trader.testing import cli_ok, running_platform  # noqa: E402


def _texts(p) -> dict[str, str]:
    today = datetime.now(UTC).date().strftime("%Y%m%d")
    exp = next(e for e in cli_ok(p, "options", "expirations", "AAPL")["expirations"] if e > today)
    strike = cli_ok(p, "options", "chain", "AAPL", "-e", exp, "--strikes", "1")["rows"][0]["strike"]
    fop = next(e for e in cli_ok(p, "options", "expirations", "ES", "--sectype", "FUT", "--exchange", "CME")
               ["expirations"] if e > today)
    fstrike = cli_ok(p, "options", "chain", "ES", "--sectype", "FUT", "--exchange", "CME", "-e", fop,
                     "--strikes", "1")["rows"][0]["strike"]
    day = lambda e: datetime.strptime(e, "%Y%m%d").strftime("%b %d").lower()  # noqa: E731
    return {"stock": "buy 10 AAPL at 200", "future": "buy 1 MES limit 5000",
            "option": f"buy 1 AAPL {strike:g}c {day(exp)} for 1.5",
            "futures option": f"sell 1 ES {fstrike:g}p {day(fop)} for 20",
            "vertical (one combo)": f"buy 1 ES call spread {fstrike:g}/{fstrike + 100:g} {day(fop)}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with running_platform(Path(tempfile.mkdtemp(prefix="bench_nl")), with_gateway=True, broker_ready=True) as p:
        texts = _texts(p)
        cli_ok(p, "nl", texts["stock"])  # warm the service's contract cache like a second command would
        print(f"{'order':28} {'elapsed p50':>12} {'max':>8} {'wall p50':>10} {'max':>8}   (ms, {args.runs} runs)")
        for kind, text in texts.items():
            inner, wall = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                doc = cli_ok(p, "nl", text)
                wall.append((time.perf_counter() - t0) * 1000)
                inner.append(doc["elapsed_ms"])
                assert doc.get("preview"), doc
            print(f"{kind:28} {statistics.median(inner):12.0f} {max(inner):8.0f} {statistics.median(wall):10.0f} "
                  f"{max(wall):8.0f}")


if __name__ == "__main__":
    main()
