"""Child process of the gauntlet: load one strategy file under an audit hook that refuses network access,
filesystem writes and subprocesses, run it on the hostile markets and the lookahead check, print one JSON line.

Request on stdin: ``{"root": strategies_directory, "file": relative path, "class_name": name or null}``.
Every refused action is recorded (a strategy that swallows the exception is still caught).

With ``"validate": {"bars_file": .npz, "costs": {...}, "capital": x, "walk_forward": [train_days, test_days] or
null}`` the worker instead backtests the strategy on those bars (and walk-forwards it) under the same hook and
prints the results as JSON (`trader.simulation.sandbox_run` stores and validates them): the strategy's code never
runs outside the sandbox, not even for the gauntlet's validate stage.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_REFUSED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.",
                     "ctypes.", "shutil.", "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "telnetlib.")
_REFUSED_EVENTS = frozenset({"os.system", "os.remove", "os.unlink", "os.rename", "os.rmdir", "os.mkdir",
                             "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.kill",
                             "os.putenv", "os.unsetenv", "sys.setprofile", "sys.settrace"})
violations: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    refused = event in _REFUSED_EVENTS or event.startswith(_REFUSED_PREFIXES)
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        refused = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                  (isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
    if refused:
        what = f"{event} {str(args[0])[:80] if args else ''}".strip()
        violations.append(what)
        raise PermissionError(f"sandbox: {what} is not allowed (no network, no filesystem writes, no subprocess)")


def _finite(metrics: dict[str, float]) -> bool:
    return all(math.isfinite(v) for k, v in metrics.items() if k != "profit_factor")


def _read_bars(path: str) -> dict[int, Any]:
    """Bars written by `trader.simulation.sandbox_run.write_bars` (numpy arrays only: no pickle)."""
    import numpy as np
    import pandas as pd

    out = {}
    with np.load(path, allow_pickle=False) as z:
        for c in sorted({int(k.split("_", 1)[0]) for k in z.files}):
            idx = pd.DatetimeIndex(pd.to_datetime(z[f"{c}_ts"], unit="ns", utc=True))
            out[c] = pd.DataFrame({k: z[f"{c}_{k}"] for k in ("open", "high", "low", "close", "volume")}, index=idx)
    return out


def _validate(cls: Any, spec: dict[str, Any], bars: dict[int, Any]) -> dict[str, Any]:
    """The validate stage's strategy runs: one backtest and (when asked) a walk-forward, as JSON-able dicts."""
    from dataclasses import asdict

    from trader.errors import BacktestError
    from trader.simulation.backtester import Costs, run_backtest
    from trader.simulation.walkforward import walk_forward

    costs, capital = Costs(**spec["costs"]), float(spec["capital"])
    r = run_backtest(cls(), bars, costs=costs, capital=capital)
    out: dict[str, Any] = {"class_name": cls.__name__, "run": {
        "mode": r.mode, "initial_capital": r.initial_capital, "turnover": r.turnover, "metrics": r.metrics,
        "equity_ns": r.equity.index.as_unit("ns").asi8.tolist(), "equity": r.equity.tolist(),
        "trades": [{**asdict(t), "entry_time": str(t.entry_time), "exit_time": str(t.exit_time)} for t in r.trades]}}
    if spec.get("walk_forward"):
        train, test = spec["walk_forward"]
        try:
            wf = walk_forward(cls, bars, {}, train_days=train, test_days=test, costs=costs, capital=capital,
                              mode=r.mode)
        except BacktestError as exc:  # too few bars for one window: the verdict says why
            out["walk_forward"] = {"error": str(exc)}
        else:
            out["walk_forward"] = {"windows": [asdict(w) for w in wf.windows], "summary": wf.summary,
                                   "settings": wf.settings, "grid_size": wf.grid_size,
                                   "pbo": asdict(wf.pbo) if wf.pbo else None}
    return out


def main() -> None:
    """Read the request, install the audit hook, run the markets and the lookahead check, print the answer."""
    request = json.loads(sys.stdin.read())
    # Everything the run needs is imported before the hook, so only the strategy's own actions are judged.
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    from trader.simulation.backtester import is_panel, run_backtest
    from trader.simulation.gauntlet import hostile_markets
    from trader.simulation.lookahead import check_lookahead
    from trader.strategy.loader import load_strategy_class

    markets = hostile_markets()
    spec = request.get("validate")
    if spec is not None:  # read before the hook: the bars file is the parent's
        import trader.simulation.walkforward  # noqa: F401
        given = _read_bars(spec["bars_file"])
    sys.dont_write_bytecode = True  # importing the strategy must not try to write a .pyc (a refused write)
    sys.addaudithook(_audit)
    out: dict[str, Any] = {"markets": {}, "market_problems": []}
    try:
        cls = load_strategy_class(request["root"], request["file"], request.get("class_name"))
    except Exception as exc:  # noqa: BLE001 - any failure to load is the answer
        print(json.dumps({"ok": False, "error": f"cannot load the strategy: {type(exc).__name__}: {exc}",
                          "violations": violations}))
        return
    if spec is not None:
        try:
            answer = _validate(cls, spec, given)
        except Exception as exc:  # noqa: BLE001 - a strategy that raises on the bars fails the stage
            answer = {"error": f"the backtest raised {type(exc).__name__}: {exc}"[:500]}
        answer["violations"] = list(dict.fromkeys(violations))
        print(json.dumps(answer, default=str))
        return
    panel = is_panel(cls())
    for name, bars in markets.items():
        try:
            # A panel strategy gets the market and a shifted copy of it as a two-conId panel.
            data = {1: bars, 2: bars * 1.01} if panel else bars
            r = run_backtest(cls(), data, capital=100_000.0)
            ok = _finite(r.metrics) and bool(r.equity.notna().all())
            out["markets"][name] = {"ok": ok, "trades": int(r.metrics["trade_count"]),
                                    "total_return": r.metrics["total_return"],
                                    "max_drawdown": r.metrics["max_drawdown"]}
            if not ok:
                out["market_problems"].append(f"{name}: non-finite results")
        except Exception as exc:  # noqa: BLE001 - a strategy that raises on a market fails that market
            out["markets"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
            out["market_problems"].append(f"{name}: {type(exc).__name__}: {exc}"[:300])
    try:
        chop = markets["chop"].iloc[:160]
        if panel:  # every conId cut at the same instant: a read of any conId's later bar is caught
            rep = check_lookahead(cls, {1: chop, 2: markets["trend"].iloc[:160]}, checkpoints=25)
        else:
            rep = check_lookahead(cls, chop, checkpoints=25)
        look = {"ok": rep.ok, "checked_bars": rep.checked_bars, "first_bad_bar": rep.first_bad_bar,
                "meaning": rep.meaning}
    except Exception as exc:  # noqa: BLE001
        look = {"ok": False, "checked_bars": 0, "meaning": f"lookahead check raised {type(exc).__name__}: {exc}"}
    out["lookahead"] = look
    if violations:
        out["market_problems"] = [f"refused: {v}" for v in dict.fromkeys(violations)] + out["market_problems"]
    out["markets_ok"] = not out["market_problems"]
    out["violations"] = list(dict.fromkeys(violations))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
