"""Promotion checklist for a stored backtest run, and the deploy gate that relies on it.

`promotion_checks` is pure: metrics + t-test p + out-of-sample return against `PromotionConfig` thresholds.
Comparisons are the ones the checklist states: trades ≥ min, profit factor > min, Sharpe > min, max drawdown
< max, t-test p < max, walk-forward out-of-sample total return > 0, and every conId's bars stored market data
(a run on the simulated market's prices never validates). A missing number fails its check.

`validate_run` gathers those numbers for a stored run (the out-of-sample return from a given walk-forward, or
from a walk-forward of the run's own fixed params over its own strategy, conIds and bars), persists the
verdict in run_validations and returns it. `deploy_run` appends a validated run to the user's
strategy_runtime.yaml; an unvalidated one only with `force`.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import BacktestError, NotValidated, WalkForwardMismatch

if TYPE_CHECKING:
    import pandas as pd

    from trader.config import PromotionConfig
    from trader.data.store import DuckStore


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the checklist: `rule` reads like the test applied, e.g. ``sharpe > 1.0``."""

    check: str
    threshold: float
    value: float | None
    passed: bool
    rule: str
    note: str = ""


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x) else None


def promotion_checks(metrics: Mapping[str, Any], *, t_test_p: float | None, oos_total_return: float | None,
                     criteria: PromotionConfig, stored_share: float | None = None) -> list[Check]:
    """Apply the checklist to one run's metrics (as stored: non-finite values are None). `stored_share` is
    the fraction of the run's conIds whose bars are stored market data (None: unknown, which fails)."""
    trades = _num(metrics.get("trade_count"))
    sharpe = _num(metrics.get("sharpe"))
    max_dd = _num(metrics.get("max_drawdown"))
    pf = _num(metrics.get("profit_factor"))
    pf_note = ""
    if pf is None and (trades or 0) > 0 and (_num(metrics.get("avg_loss")) or 0.0) == 0.0:
        pf, pf_note = math.inf, "no losing trades: profit factor is infinite"  # stored as null (not JSON)
    out = [
        Check("min_trades", criteria.min_trades, trades, trades is not None and trades >= criteria.min_trades,
              f"trade_count >= {criteria.min_trades}"),
        Check("min_profit_factor", criteria.min_profit_factor, None if pf == math.inf else pf,
              pf is not None and pf > criteria.min_profit_factor, f"profit_factor > {criteria.min_profit_factor}",
              pf_note),
        Check("min_sharpe", criteria.min_sharpe, sharpe, sharpe is not None and sharpe > criteria.min_sharpe,
              f"sharpe > {criteria.min_sharpe}"),
        Check("max_drawdown", criteria.max_drawdown, max_dd, max_dd is not None and max_dd < criteria.max_drawdown,
              f"max_drawdown < {criteria.max_drawdown}"),
        Check("max_t_test_p", criteria.max_t_test_p, t_test_p, t_test_p is not None and t_test_p < criteria.max_t_test_p,
              f"t_test p < {criteria.max_t_test_p}"),
    ]
    if criteria.require_positive_oos:
        out.append(Check("positive_oos", 0.0, oos_total_return, oos_total_return is not None and oos_total_return > 0,
                         "walk-forward out-of-sample total_return > 0",
                         "" if oos_total_return is not None else "no out-of-sample result"))
    if criteria.require_stored_bars:
        out.append(Check("stored_bars", 1.0, stored_share, stored_share is not None and stored_share >= 1.0,
                         "share of conIds with stored market bars = 1",
                         "" if stored_share == 1.0 else "tested on SIMULATED prices (the simulated market model or "
                         "history from the simulated gateway): says nothing about the market"))
    return out


def bar_provenance(run: Mapping[str, Any], data_dir: str | os.PathLike[str] | None) -> dict[int, str]:
    """Provenance of each of a run's conIds' bars over its span, as the bar store holds them now
    (`trader.simulation.coverage`: vendor_history, simulated_gateway_history or simulated_model)."""
    import pandas as pd

    from trader.simulation.coverage import frame_provenance
    from trader.simulation.data import load_bars

    start, end = pd.Timestamp(run["start_ts"]), pd.Timestamp(run["end_ts"])
    days = int((max(pd.Timestamp.now(tz="UTC"), end) - start).days) + 2
    return {int(c): frame_provenance(load_bars(int(c), days, run["bar_size"],
                                               None if data_dir is None else str(data_dir)))
            for c in run["conids"]}


def stored_share(run: Mapping[str, Any], data_dir: str | os.PathLike[str] | None) -> float:
    """Fraction of a run's conIds whose bars over the run's span are real vendor history: neither simulated
    model prices nor bars downloaded from the simulated gateway."""
    from trader.simulation.coverage import VENDOR

    per = bar_provenance(run, data_dir)
    return sum(p == VENDOR for p in per.values()) / len(per) if per else 0.0


def walkforward_mismatches(run: Mapping[str, Any], wf: Mapping[str, Any],
                           defaults: Mapping[str, Any] | None = None) -> list[str]:
    """Why a walk-forward is not evidence for a run (empty when it is): a different strategy file, class,
    conIds or bar size, or a run parameter value the walk-forward never tried. `defaults` (the strategy's
    declared params) fill in parameters that one side leaves at their default; without them such a
    parameter is not compared."""
    out = []
    for key, label in (("strategy", "strategy"), ("class_name", "class"), ("bar_size", "bar size")):
        if run.get(key) != wf.get(key):
            out.append(f"{label} {wf.get(key)!r} is not the run's {run.get(key)!r}")
    if sorted(int(c) for c in run["conids"]) != sorted(int(c) for c in wf["conids"]):
        out.append(f"conIds {sorted(wf['conids'])} are not the run's {sorted(run['conids'])}")
    defaults = defaults or {}
    params, grid = run.get("params") or {}, wf.get("grid") or {}
    for name in sorted(set(params) | set(grid)):
        value = params.get(name, defaults.get(name, _MISSING))
        tried = grid.get(name, [defaults[name]] if name in defaults else _MISSING)
        if value is _MISSING or tried is _MISSING:
            continue
        if not any(_same(value, t) for t in tried):
            out.append(f"{name}={value!r} is not among the walk-forward's values {list(tried)!r}")
    return out


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    # JSON round trips turn 5 into 5.0 and True into "true" in places: compare as numbers when both are.
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b or str(a) == str(b)


def t_test_p(run: Mapping[str, Any]) -> float | None:
    """One-sided p of the t-test that the mean return is > 0 (trade returns, or bar returns with < 5 trades),
    from `trader.simulation.stats.confidence_report`."""
    import numpy as np

    from trader.simulation.stats import confidence_report

    curve = np.concatenate(([run["capital"]], np.asarray(run["equity"]["v"], float)))
    trade_rets = np.array([t["return_pct"] for t in run["trades"]], float)
    for r in confidence_report(np.diff(curve) / curve[:-1], trade_rets, n_boot=10):
        if r.name == "t_test":
            return r.p_value
    return None


def run_bars(run: Mapping[str, Any], data_dir: str | os.PathLike[str] | None) -> dict[int, pd.DataFrame]:
    """The bars a stored run was tested on: each conId's bars (bar store, else simulated) cut to the run's span."""
    import pandas as pd

    from trader.simulation.data import load_bars

    start, end = pd.Timestamp(run["start_ts"]), pd.Timestamp(run["end_ts"])
    days = int((max(pd.Timestamp.now(tz="UTC"), end) - start).days) + 2
    out = {}
    for c in run["conids"]:
        df = load_bars(int(c), days, run["bar_size"], None if data_dir is None else str(data_dir))
        df = df[(df.index >= start) & (df.index <= end)]
        if len(df) >= 2:
            out[int(c)] = df
    if not out:
        raise BacktestError(f"no bars for run {run['id']} between {start} and {end}")
    return out


def own_walk_forward(store: DuckStore, run: Mapping[str, Any], criteria: PromotionConfig, *,
                     strategies_root: Path, data_dir: str | os.PathLike[str] | None) -> str:
    """Walk-forward of a run's own fixed params (grid of single values) on its strategy, conIds and span,
    with the checklist's train/test lengths in days; persisted with `run_id` set. Returns its id."""
    from trader.simulation.backtester import Costs
    from trader.simulation.walkforward import save_walkforward, walk_forward
    from trader.strategy.loader import load_strategy_class

    cls = load_strategy_class(strategies_root, run["strategy"], run["class_name"])
    grid = {k: [v] for k, v in run["params"].items()}
    result = walk_forward(cls, run_bars(run, data_dir), grid, train_days=criteria.walk_forward_train_days,
                          test_days=criteria.walk_forward_test_days, costs=Costs(**run["costs"]),
                          capital=float(run["capital"]), mode=run["mode"])
    return save_walkforward(store, result, strategy=run["strategy"], class_name=run["class_name"],
                            conids=list(run["conids"]), bar_size=run["bar_size"], grid=grid, run_id=run["id"])


def validate_run(store: DuckStore, run_id: str, criteria: PromotionConfig, *, walkforward_id: str | None = None,
                 strategies_root: Path | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 walkforward_note: str | None = None) -> dict[str, Any]:
    """Run the checklist on a stored run and persist the verdict. The out-of-sample return comes from
    `walkforward_id`, else (when the checklist requires it) from a fresh walk-forward of the run's own params;
    `walkforward_note` says why no walk-forward could run (the gauntlet's sandbox tried): the check then fails
    with it."""
    import msgspec

    from trader.simulation.store import get_run
    from trader.simulation.walkforward import get_walkforward

    run = get_run(store, run_id)
    oos: float | None = None
    note = ""
    if walkforward_id is not None:
        wf = get_walkforward(store, walkforward_id)
        defaults = None
        if strategies_root is not None:
            from trader.strategy.loader import load_strategy_class

            try:
                defaults = load_strategy_class(strategies_root, run["strategy"], run["class_name"]).params()
            except Exception:  # noqa: BLE001 - the file is gone or changed: compare the explicit values only
                defaults = None
        wrong = walkforward_mismatches(run, wf, defaults)
        if wrong:
            raise WalkForwardMismatch(f"walk-forward {walkforward_id} does not test run {run_id}: "
                                      f"{'; '.join(wrong)} (run `mmr backtests validate {run_id}` without "
                                      "--walk-forward-id to walk-forward the run's own parameters)")
        oos = wf["summary"].get("oos_total_return")
    elif criteria.require_positive_oos and walkforward_note is not None:
        note = walkforward_note
    elif criteria.require_positive_oos:
        if strategies_root is None:
            raise BacktestError("a walk-forward of the run needs strategies_root (or pass walkforward_id)")
        try:
            walkforward_id = own_walk_forward(store, run, criteria, strategies_root=strategies_root,
                                              data_dir=data_dir)
        except BacktestError as exc:  # too few bars for one window: the check fails and says why
            note = str(exc)
        else:
            oos = get_walkforward(store, walkforward_id)["summary"].get("oos_total_return")
    from trader.simulation.coverage import coverage_warning, provenance_warning, worst

    per = bar_provenance(run, data_dir)
    share = (sum(p == "vendor_history" for p in per.values()) / len(per) if per else 0.0) \
        if criteria.require_stored_bars else None
    checks = promotion_checks(run["metrics"], t_test_p=t_test_p(run), oos_total_return=oos, criteria=criteria,
                              stored_share=share)
    if note:
        checks = [Check(c.check, c.threshold, c.value, c.passed, c.rule, note) if c.check == "positive_oos" else c
                  for c in checks]
    passed = all(c.passed for c in checks)
    doc = {"id": uuid.uuid4().hex[:8], "run_id": run_id, "passed": passed,
           "failed": [c.check for c in checks if not c.passed], "checks": [asdict(c) for c in checks],
           "walkforward_id": walkforward_id, "criteria": msgspec.to_builtins(criteria),
           "provenance": worst(list(per.values())), "coverage": run.get("coverage") or [],
           "execution": run.get("execution", "unknown"),
           "warnings": [w for c, p in per.items() if (w := provenance_warning(c, p))]
           + [w for c in run.get("coverage") or [] if (w := coverage_warning(c, run["bar_size"]))]}
    store.execute("INSERT INTO run_validations VALUES (?, ?, ?, ?, ?, ?, ?)",
                  [doc["id"], run_id, datetime.now(UTC), walkforward_id, passed, json.dumps(doc["checks"]),
                   json.dumps(doc["criteria"])])
    return doc


def latest_validation(store: DuckStore, run_id: str) -> dict[str, Any] | None:
    """The most recent stored verdict for a run, or None when it was never validated."""
    df = store.fetch_df("SELECT * FROM run_validations WHERE run_id = ? ORDER BY created_at DESC LIMIT 1", [run_id])
    if df.empty:
        return None
    r = df.to_dict("records")[0]
    r["checks"], r["criteria"] = json.loads(r["checks"]), json.loads(r["criteria"])
    r["created_at"], r["passed"] = str(r["created_at"]), bool(r["passed"])
    r["walkforward_id"] = r["walkforward_id"] if isinstance(r["walkforward_id"], str) else None  # NULL → NaN
    r["failed"] = [c["check"] for c in r["checks"] if not c["passed"]]
    return r


# --------------------------------------------------------------------------- deploy

def validated_run_for_source(store: DuckStore, module: str, source_hash: str) -> str | None:
    """The newest stored run of ``module`` backtested on exactly this source (``source_hash``) whose latest
    `backtests validate` passed, or None: what live auto-execution requires without --force."""
    df = store.fetch_df("SELECT id FROM backtest_runs WHERE strategy = ? AND source_hash = ? ORDER BY created_at DESC",
                        [module, source_hash])
    for run_id in df["id"].tolist():
        verdict = latest_validation(store, run_id)
        if verdict and verdict["passed"]:
            return str(run_id)
    return None


_RUNTIME_HEADER = "# Live strategy runtime (strategy_service). Strategies load from strategies_directory only.\n"


def read_runtime(path: Path) -> dict[str, Any]:
    """strategy_runtime.yaml as plain data (``{"strategies": []}`` when absent or empty)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    data = data or {}
    data.setdefault("strategies", [])
    data["strategies"] = data["strategies"] or []
    return data


def deploy_run(store: DuckStore, run_id: str, runtime_path: Path, *, name: str | None = None,
               force: bool = False, strategies_root: Path | None = None) -> dict[str, Any]:
    """Append a stored run to strategy_runtime.yaml as a paper strategy. Without `force` the run's latest
    validation must have passed (NotValidated names the failed checks) and, given `strategies_root`, the
    strategy file must be the code that was backtested (same source hash). Returns the entry written."""

    from trader.simulation.store import get_run
    from trader.strategy.runtime_file import add_entry

    run = get_run(store, run_id)
    verdict = latest_validation(store, run_id)
    validated = bool(verdict and verdict["passed"])
    if not validated and not force:
        why = (f"failed checks: {', '.join(verdict['failed'])}" if verdict
               else f"it was never validated (mmr backtests validate {run_id})")
        raise NotValidated(f"run {run_id} is not validated — {why}; use --force to deploy anyway")
    if strategies_root is not None and not force:
        from trader.strategy.loader import resolve_strategy_path, source_hash

        if source_hash(resolve_strategy_path(strategies_root, run["strategy"])) != run["source_hash"]:
            raise NotValidated(f"{run['strategy']} changed since run {run_id} was backtested: the validated code "
                               "is not what would run; backtest and validate again, or use --force")
    entry = {"name": name or f"{run['class_name'].lower()}_{run_id}", "module": run["strategy"],
             "class": run["class_name"], "conids": [int(c) for c in run["conids"]], "bar_size": run["bar_size"],
             "params": dict(run["params"]), "paper": True, "run_id": run_id, "validated": validated}
    return add_entry(runtime_path, entry)  # locked, re-read, checked and renamed: concurrent deploys both survive
