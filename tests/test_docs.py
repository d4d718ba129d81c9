"""CLAUDE.md and skills/ must match the real CLI: every `mmr …` example names a real command and real flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from trader.mmr_cli import ALIASES, COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "CLAUDE.md", ROOT / "README.md", *sorted((ROOT / "skills").rglob("*.md"))]
EXAMPLE = re.compile(r"(?:^|[`\s])(?:\.venv/bin/)?mmr((?:\s+[^`#\n|]+)?)")


def _examples() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            for m in EXAMPLE.finditer(line):
                args = m.group(1).strip()
                if args:
                    out.append((doc.name, args))
    return out


def _resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    ctx = click.Context(cli)
    words = [a for a in args if a != "--json"]
    assert words, "an example must name a command"
    name = ALIASES.get(words[0], words[0])
    assert name in COMMANDS, f"unknown command {words[0]!r}"
    cmd = cli.get_command(ctx, name)
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        cmd = cmd.get_command(ctx, rest[0])
        rest = rest[1:]
    return cmd, rest


EXAMPLES = _examples()


def test_docs_have_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("doc", "example"), EXAMPLES)
def test_example_names_real_command_and_flags(doc, example):
    try:
        args = shlex.split(example)
    except ValueError:
        pytest.fail(f"{doc}: cannot parse example 'mmr {example}'")
    words = [a for a in args if a != "--json"]
    if not words or not re.fullmatch(r"[a-z][a-z0-9-]*", words[0]):
        return  # prose or a placeholder like `mmr <command> [args]` / `mmr --json …`
    cmd, rest = _resolve(args)
    known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    for word in rest:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert flag in known, f"{doc}: 'mmr {example}': {cmd.name} has no flag {flag}"


# --------------------------------------------------------------------------- every example runs (issue 14)
# Every `mmr …` line in the docs runs as written against ONE simulated platform, in doc order, in-process
# (`trader.mmr_cli.run`: the `mmr` script's code path without a Python start-up per line). A line passes when it
# exits 0 and prints its shape: one JSON document with --json (JSON Lines for listen/watch), some text without.
#
# Placeholder convention — ids in the docs stand for whatever the platform really has when the line runs:
#   12 / proposal-12        → a PENDING proposal made for this line (approve/reject consume one)
#   42                      → a working order placed for this line (a limit buy far below the market)
#   a8cfb23e                → the backtest run made by the first `backtest` line
#   5c2e9b71                → the walk-forward made by the `backtests walk-forward` line
#   3f9a1c2e / SWEEP_ID     → the sweep made by a short sweep the runner does first
#   SYMBOL → AAPL, `--request ID` → r-example-1
#   EXPIRY / STRIKE         → the option line's last listed expiry / its strike nearest the money
#   NEAR_EXPIRY             → the listed expiry before EXPIRY (a calendar's near leg)
#   LOWER / HIGHER          → the listed strikes just below / above STRIKE (a spread's other leg)
#
# Lines that cannot run here, and why (an explicit list, not pytest skips):
SKIP_LINES = {
    "up": "starts the services (the test platform is already up)",
    "down": "stops the services the other lines need",
    "up --foreground": "starts the services in the foreground until stopped",
    "--json watch --count 3 --interval 5": "10 s of sleeps; `watch` itself is tested in tests/e2e",
    "watch --interval 5": "human `watch` runs until Ctrl-C",
    "mcp": "an MCP stdio server: runs until its host disconnects (tests/mcp drives it over stdio)",
    "mcp --role proposer": "an MCP stdio server: runs until its host disconnects (tests/mcp drives it over stdio)",
    "mcp --role approver": "an MCP stdio server: runs until its host disconnects (tests/mcp drives it over stdio)",
    "mcp --http --port 8765": "an MCP HTTP server: runs until stopped",
    "web": "the dashboard: serves until stopped (tests/web drives `mmr web` in headless Chromium)",
    "web --port 8766": "the dashboard: serves until stopped (tests/web drives `mmr web` in headless Chromium)",
    "keys": "would make new CURVE keys under the running services",
    "keys create": "would make new CURVE keys under the running services",
    "keys rotate proposer": "rotating a key under the running services is tested in tests/test_cli_keys.py",
    "--json history massive --symbol AAPL --bar_size \"1 day\" --prev_days 30": "needs a Massive.com API key",
    "history massive --symbol AAPL --bar_size \"1 day\" --prev_days 30": "needs a Massive.com API key",
    "history massive --symbol AAPL --bar_size \"1 min\" --prev_days 5": "needs a Massive.com API key",
    "--json sweep run examples/nightly_sweep.yaml": "the nightly sweep file: long by design (its --dry-run runs)",
    "--json sweep run examples/nightly_sweep.yaml >> ~/.local/share/mmr/logs/sweep.log 2>&1":
        "a crontab line with shell redirection (its --dry-run runs)",
    "sweep run FILE.yaml --resume SWEEP_ID": "resuming needs an interrupted sweep",
    "risk set KEY VALUE": "a syntax summary (KEY VALUE); `risk set max_orders_per_window 20` runs",
    "--json history update --universe demo --bar_size \"1 min\"":
        "a paced download of 10 symbols (~20 s); tested in tests/e2e/test_history_cli.py",
    "--json backtest -s ma_crossover.py --universe demo --days 365":
        "needs the demo universe's conIds, which only that download resolves; tested in tests/e2e/test_cli_backtest.py",
    "listen AAPL --count 10": "the same stream as `--json listen AAPL --count 5`, twice as long",
    "--json sweep run examples/nightly_sweep.yaml --dry-run":
        "times a sample backtest of every job (~10 s); a dry run is tested in tests/e2e/test_cli_sweep.py",
}


def _runnable(example: str) -> bool:
    """Prose, placeholders and syntax summaries (`[--opt]`, `<command>`, `…`) are not commands to run."""
    try:
        words = [w for w in shlex.split(example) if w != "--json"]
    except ValueError:
        return False
    return (bool(words) and bool(re.fullmatch(r"[a-z][a-z0-9-]*", words[0]))
            and not any(w[:1] in ("[", "<") or "…" in w for w in words))


def _unique_examples() -> list[str]:
    """Each distinct line once; a line that differs from another only by `--json` runs once, as `--json`
    (the human form is the same command with a renderer: `test_human_forms_render` covers a sample)."""
    seen: dict[str, str] = {}
    for _doc, example in EXAMPLES:
        try:
            key = " ".join(w for w in shlex.split(example) if w != "--json")
        except ValueError:
            key = example
        if key not in seen or "--json" in example.split():
            seen[key] = example
    return list(dict.fromkeys(seen.values()))


@pytest.fixture(scope="module")
def docs_platform(tmp_path_factory):
    from trader.testing import running_platform

    with running_platform(tmp_path_factory.mktemp("docs"), with_gateway=True, broker_ready=True,
                          STRATEGIES_DIRECTORY=str(ROOT / "strategies")) as p:
        yield p


def _mmr(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    from trader.cli.core import AppContext
    from trader.mmr_cli import run

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        code = run(list(args), AppContext(json="--json" in args))
    return code, buf.getvalue() or err.getvalue()


def _doc(*args: str):
    import json

    code, out = _mmr("--json", *args)
    assert code == 0, (args, out)
    return json.loads(out)


class _Ids:
    """The real ids that the docs' placeholder ids stand for, and the state a line acts on (see above)."""

    def __init__(self) -> None:
        self.run_id = self.walkforward_id = self.sweep_id = None

    def proposal(self) -> str:
        return str(_doc("propose", "AAPL", "BUY", "--quantity", "1", "--limit", "1")["id"])

    def order(self) -> str:
        placed = _doc("buy", "MSFT", "--quantity", "1", "--limit", "1")
        return str(placed["order_ids"][0])

    @staticmethod
    def hold(symbol: str) -> None:
        """Buy 10 ``symbol`` and wait (≤ 5 s) until the position shows."""
        import time

        _doc("buy", symbol, "--quantity", "10")
        end = time.monotonic() + 5
        while symbol not in {p["symbol"] for p in _doc("positions")} and time.monotonic() < end:
            time.sleep(0.1)

    def prepare(self, words: list[str]) -> None:
        """Make the state a line acts on: the position it sells/closes/protects, the group it tags."""
        selling = (words[0] in ("close", "protect")
                   or (words[0] in ("sell", "propose") and "SELL" in words[:3] + ["SELL" * (words[0] == "sell")]
                       and "--short" not in words))
        if words[0] == "close" and not words[1].isdigit():  # the whole position: no working sells on it
            _doc("cancel-all")
        if selling:
            rows = _doc("positions")
            if words[1].isdigit():  # `close N`: row N must hold enough for `--quantity 5`
                row = next((r for r in rows if str(r.get("row")) == words[1]), None)
                if row is None or abs(row["quantity"]) < 10:
                    self.hold(row["symbol"] if row else "AAPL")
            elif sum(abs(r["quantity"]) for r in rows if r["symbol"] == words[1]) < 10:
                self.hold(words[1])
        if "--group" in words:
            name = words[words.index("--group") + 1]
            if name not in {g["name"] for g in _doc("group", "list")}:
                _doc("group", "create", name, "--budget", "100")
        if words[:2] == ["group", "create"] and words[2] in {g["name"] for g in _doc("group", "list")}:
            _doc("group", "delete", words[2])

    def substitute(self, example: str) -> str:
        words = [w for w in shlex.split(example) if w != "--json"]
        if re.search(r"\bproposal-12\b", example):
            example = example.replace("proposal-12", f"proposal-{self.proposal()}")
        if words[:1] in (["approve"], ["reject"]) or words[:2] == ["proposals", "show"]:
            example = re.sub(r"\b12\b", self.proposal(), example)
        if words[:1] == ["options"] and ("EXPIRY" in example or "STRIKE" in example):
            expiry = _doc("options", "expirations", words[2])["expirations"][-1]
            strike = _doc("options", "chain", words[2], "-e", expiry, "--strikes", "1")["rows"][0]["strike"]
            if "NEAR_EXPIRY" in example:  # before EXPIRY, which it contains
                example = example.replace("NEAR_EXPIRY", _doc("options", "expirations", words[2])["expirations"][-2])
            example = example.replace("EXPIRY", expiry).replace("STRIKE", f"{strike:g}")
            if "LOWER" in example or "HIGHER" in example:
                near = sorted({r["strike"] for r in _doc("options", "chain", words[2], "-e", expiry, "--strikes",
                                                         "5")["rows"]})
                lower, higher = max(k for k in near if k < strike), min(k for k in near if k > strike)
                example = example.replace("LOWER", f"{lower:g}").replace("HIGHER", f"{higher:g}")
        if words[:1] in (["cancel"], ["to-market"]):
            example = re.sub(r"\b42\b", self.order(), example)
        for fake, real in (("a8cfb23e", self.run_id), ("RUN_ID", self.run_id), ("5c2e9b71", self.walkforward_id),
                           ("3f9a1c2e", self.sweep_id), ("SWEEP_ID", self.sweep_id)):
            if fake in example and real:
                example = example.replace(fake, real)
        return example.replace("SYMBOL", "AAPL").replace("--request ID", "--request r-example-1")

    def learn(self, words: list[str], doc: Any) -> None:
        """Remember the ids the research lines made, for the lines after them."""
        if words[0] == "backtest" and self.run_id is None:
            self.run_id = doc["id"]
        elif words[:2] == ["backtests", "walk-forward"]:
            self.walkforward_id = doc["id"]


# Lines whose documented outcome is a refusal or a failing verdict, with what the docs promise instead of exit 0.
EXPECTED_OUTCOME = {
    ("backtests", "validate"): (1, "passed", "the checklist verdict (exit 1 when a check fails: simulated bars "
                                             "never pass `stored_bars`)"),
    ("strategies", "deploy"): (1, "NotValidated", "refused: the run is not validated (it cannot be here)"),
    ("strategies", "generate"): (1, "ANTHROPIC_API_KEY", "refused: the docs platform has no Anthropic API key "
                                                         "(generation end to end: tests/e2e/test_cli_generate.py)"),
}


def _outcome_ok(args: list[str], code: int, out: str) -> bool:
    import json

    words = [a for a in args if a != "--json"]
    expected = EXPECTED_OUTCOME.get(tuple(words[:2]))
    if code == 0:
        return True
    if expected is None or code != expected[0]:
        return False
    return expected[1] in out if "--json" not in args else expected[1] in json.dumps(json.loads(out))


def _shape_ok(args: list[str], out: str) -> bool:
    import json

    if "--json" not in args:
        return bool(out.strip())
    lines = out.strip().splitlines()
    try:
        if [a for a in args if a != "--json"][0] in ("listen", "watch"):
            return bool(lines) and all(isinstance(json.loads(line), dict) for line in lines)
        json.loads(out)
    except ValueError:
        return False
    return len(lines) == 1


# ~150 lines against one platform: ~125 s with its start at load 20 on 2 cores, over the suite's 120 s default
@pytest.mark.timeout(900)
def test_every_documented_example_runs(docs_platform, monkeypatch, tmp_path):
    import json
    import shutil
    import time

    for key, value in docs_platform.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STRATEGIES_DIRECTORY", str(ROOT / "strategies"))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)  # relative paths as in the docs; exports and plots land here
    ids = _Ids()
    sweep = _doc("bt-sweep", "-s", "ma_crossover.py", "--conids", "265598", "--days", "120",
                 "--grid", '{"FAST":[5,10],"SLOW":[30]}')  # two runs: `sweep overfit` needs at least 2
    ids.sweep_id = sweep["sweep"]["sweep_id"]
    _doc("buy", "AAPL", "--quantity", "10", "--request-id", "r-example-1")  # the docs' example request
    failures, timings = [], []
    for example in _unique_examples():
        if example in SKIP_LINES or not _runnable(example):
            continue
        line = ids.substitute(example)
        args = shlex.split(line)
        words = [a for a in args if a != "--json"]
        ids.prepare(words)
        t0 = time.perf_counter()
        code, out = _mmr(*args)
        timings.append((time.perf_counter() - t0, line))
        if not _outcome_ok(args, code, out) or not _shape_ok(args, out):
            failures.append(f"mmr {example}\n    ran: mmr {line}\n    exit {code}: {out.strip()[:300]}")
            continue
        if code == 0 and "--json" in args and words[0] not in ("listen", "watch"):
            ids.learn(words, json.loads(out))
        if words[:2] == ["risk", "set"]:  # a documented limit change: undo it so later lines run as before
            _doc("risk", "set", words[2], str(_DEFAULT_LIMITS.get(words[2], 1000)))
    print("slowest lines:", sorted(timings, reverse=True)[:8])
    assert not failures, f"{len(failures)} documented lines fail:\n" + "\n".join(failures)


_DEFAULT_LIMITS = {"max_orders_per_window": 1000, "min_price": 0}
