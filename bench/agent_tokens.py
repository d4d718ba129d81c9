"""What one idle MONITOR cycle costs the agent in tokens: status, pdiff, session, prisk, proposals --brief.

Starts the simulated platform in a temp MMR_HOME, opens 20 positions and stores 100 proposals, then runs each
command of the cycle exactly as the agent does (``mmr --json …``, in-process) and counts its output with
``trader.tools.tokens.conservative_tokens`` — a deliberately high estimate, because no real tokenizer works
offline here (see that module). Target (issue 14): the whole cycle ≤ 1,500 tokens. Exit 1 when over.

    .venv/bin/python bench/agent_tokens.py [--positions 20] [--proposals 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

CYCLE = (("status",), ("pdiff",), ("session",), ("prisk",), ("proposals", "--brief"))
SYMBOLS = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "JPM", "V", "UNH", "XOM", "JNJ", "WMT", "PG",
           "MA", "HD", "CVX", "LLY", "AVGO", "KO", "PEP", "COST", "MRK", "ABBV", "ADBE", "CRM", "NFLX", "AMD"]
BUDGET = 1500


def mmr(*args: str) -> tuple[int, str]:
    from trader.cli.core import AppContext
    from trader.mmr_cli import run

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run(["--json", *args], AppContext(json=True))
    return code, buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--positions", type=int, default=20)
    ap.add_argument("--proposals", type=int, default=100)
    opts = ap.parse_args()
    from trader.testing import running_platform
    from trader.tools.tokens import conservative_tokens

    with tempfile.TemporaryDirectory() as tmp, \
            running_platform(Path(tmp), with_gateway=True, broker_ready=True, MAX_ORDERS_PER_WINDOW="1000") as p:
        os.environ.update(p.env)
        for sym in SYMBOLS[: opts.positions]:
            code, out = mmr("buy", sym, "--quantity", "10")
            assert code == 0, out
        for i in range(opts.proposals):
            code, out = mmr("propose", SYMBOLS[i % len(SYMBOLS)], "BUY", "--quantity", "1", "--limit", "1")
            assert code == 0, out
        mmr("pdiff")  # the first diff sets the baseline; the cycle measures an idle one
        rows, total = [], 0
        for cmd in CYCLE:
            code, out = mmr(*cmd)
            doc = json.loads(out)
            tokens = conservative_tokens(doc)
            total += tokens
            rows.append((" ".join(cmd), code, len(out.strip()), tokens))
    print(f"idle MONITOR cycle at {opts.positions} positions, {opts.proposals} stored proposals "
          f"(conservative token estimate):")
    for name, code, chars, tokens in rows:
        print(f"  mmr --json {name:<18} exit {code}  {chars:>6} chars  ~{tokens:>5} tokens")
    print(f"  total ~{total} tokens (budget {BUDGET})")
    return 0 if total <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
