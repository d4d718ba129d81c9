"""The gauntlet: the checks a strategy file must pass before it may go live.

1. imports: an AST scan of the source — only allow-listed modules may be imported, and no `eval`, `exec`,
   `compile`, `open`, `__import__`, `globals`, `breakpoint`, `input` or dunder escapes (`__subclasses__`, …);
2. sandbox: the file is loaded and run in a child process whose audit hook refuses network (socket), filesystem
   writes and subprocesses — on a battery of hostile synthetic markets (trend, chop, gap, crash, zero volume),
   each of which must backtest without an error and with finite results;
3. lookahead: in the same sandbox, no signal may change when later bars are removed (`lookahead.check_lookahead`);
4. validate: given conIds, a backtest and walk-forward on their bars — run in the same sandbox
   (`sandbox_run.sandboxed_validate`) — stored, and the promotion checklist (`validate.validate_run`).

Stages 2–4 run only when the earlier ones passed. `passed` is every stage that ran; `ready_for_live` also needs
the validate stage to have run and passed.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ALLOWED_IMPORTS = frozenset({
    "__future__", "bisect", "collections", "dataclasses", "datetime", "decimal", "enum", "functools", "heapq",
    "itertools", "math", "numpy", "operator", "pandas", "scipy", "statistics", "typing",
    "trader.strategy.api", "trader.strategy.indicators",
})
EXACT_IMPORTS = frozenset({"trader.strategy.api", "trader.strategy.indicators"})  # these modules, not submodules
FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
                             "breakpoint", "input", "memoryview", "setattr", "delattr"})
FORBIDDEN_ATTRS = frozenset({"__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__",
                             "__dict__", "__bases__", "__mro__", "__getattribute__", "__import__", "__loader__",
                             "__spec__", "f_globals", "f_locals", "gi_frame", "tb_frame"})
SANDBOX_TIMEOUT_S = 120.0


@dataclass(slots=True)
class Stage:
    """One gauntlet stage: `ok` None when it did not run (`note` says why)."""

    name: str
    ok: bool | None
    problems: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _allowed_module(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in ALLOWED_IMPORTS - EXACT_IMPORTS) \
        or name in EXACT_IMPORTS


def import_problems(source: str, filename: str = "<strategy>") -> list[str]:
    """Every disallowed import, call and attribute in a strategy's source (empty when it is clean)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return [f"syntax error: {exc.msg} (line {exc.lineno})"]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"line {node.lineno}: import {a.name} is not allowed" for a in node.names
                    if not _allowed_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            mod = "." * node.level + (node.module or "")
            if node.level or not _allowed_module(mod):
                out.append(f"line {node.lineno}: from {mod} import … is not allowed")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            out.append(f"line {node.lineno}: {node.func.id}() is not allowed")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
            out.append(f"line {node.lineno}: .{node.attr} is not allowed")
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__"):
            out.append(f"line {node.lineno}: {node.id} is not allowed")
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    return [f"{p} (allowed imports: {allowed})" if "import" in p else p for p in out]


def hostile_markets(n: int = 260, seed: int = 11) -> dict[str, pd.DataFrame]:
    """Synthetic daily bars a strategy must survive: trend, chop, gap, crash and zero volume (deterministic)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=n, tz="UTC")
    noise = rng.normal(0, 0.004, n)

    def frame(close: np.ndarray, volume: float = 1e6, gap_open: np.ndarray | None = None) -> pd.DataFrame:
        opens = np.concatenate(([close[0]], close[:-1])) if gap_open is None else gap_open
        hi = np.maximum(opens, close) * (1 + np.abs(noise) / 2)
        lo = np.minimum(opens, close) * (1 - np.abs(noise) / 2)
        return pd.DataFrame({"open": opens, "high": hi, "low": lo, "close": close, "volume": volume}, index=idx)

    trend = 100 * np.cumprod(1 + 0.002 + noise)
    chop = 100 * (1 + 0.03 * np.sign(np.sin(np.arange(n) * 1.3))) * np.cumprod(1 + noise / 4)
    gap = 100 * np.cumprod(1 + noise)
    gap[n // 3:] *= 0.8  # a 20% gap down …
    gap[2 * n // 3:] *= 1.15  # … and a 15% gap up, both at the open
    crash = 100 * np.cumprod(1 + noise)
    crash[n // 2: n // 2 + 5] *= np.cumprod(np.full(5, 0.87))  # -50% in five bars
    crash[n // 2 + 5:] *= 0.87 ** 5
    walk = 100 * np.cumprod(1 + rng.normal(0, 0.01, n))
    return {"trend": frame(trend), "chop": frame(chop), "gap": frame(gap, gap_open=gap),
            "crash": frame(crash), "zero_volume": frame(walk, volume=0.0)}


def _sandbox(strategies_root: Path, strategy_file: str, class_name: str | None, timeout: float,
             validate: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the sandbox worker (trader.simulation.sandbox_worker) in a child process; its JSON answer. With
    `validate` the worker backtests given bars instead of the hostile markets (`sandbox_run`)."""
    request = json.dumps({"root": str(strategies_root), "file": strategy_file, "class_name": class_name,
                          "validate": validate})
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "TZ")}
    env["MMR_SANDBOX"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-m", "trader.simulation.sandbox_worker"], input=request,
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(Path(__file__).resolve().parents[2]))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"the sandboxed run took longer than {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"ok": False, "error": f"the sandbox worker died (exit {proc.returncode}): {proc.stderr[-500:]}"}
    return json.loads(lines[-1])


def run_gauntlet(strategies_root: Path, strategy_file: str, *, class_name: str | None = None,
                 validate: dict[str, Any] | None = None, timeout: float = SANDBOX_TIMEOUT_S) -> dict[str, Any]:
    """Run the stages in order on one strategy file. `validate`, when given, is a callable-free description
    the caller fulfils: ``{"run": fn(cls) -> verdict dict}`` (the CLI backtests stored bars and validates)."""
    from trader.strategy.loader import resolve_strategy_path

    path = resolve_strategy_path(strategies_root, strategy_file)
    stages = [Stage("imports", not (p := import_problems(path.read_text(), str(path))), p)]
    if stages[0].ok:
        box = _sandbox(Path(strategies_root), strategy_file, class_name, timeout)
        if "error" in box:
            stages.append(Stage("sandbox", False, [box["error"]]))
        else:
            stages.append(Stage("sandbox", box["markets_ok"], box["market_problems"], {"markets": box["markets"]}))
            stages.append(Stage("lookahead", box["lookahead"]["ok"],
                                [] if box["lookahead"]["ok"] else [box["lookahead"]["meaning"]], box["lookahead"]))
    ran_ok = all(s.ok for s in stages)
    if validate is not None and ran_ok:
        verdict = validate["run"]()
        stages.append(Stage("validate", bool(verdict["passed"]), list(verdict.get("failed") or []), verdict))
    elif validate is not None:
        stages.append(Stage("validate", None, note="not run: an earlier stage failed"))
    else:
        stages.append(Stage("validate", None, note="not run: give --conids (stored bars) to backtest and validate"))
    passed = all(s.ok for s in stages if s.ok is not None)
    return {"file": strategy_file, "passed": passed,
            "ready_for_live": passed and stages[-1].ok is True,
            "failed": [s.name for s in stages if s.ok is False], "stages": [asdict(s) for s in stages]}
