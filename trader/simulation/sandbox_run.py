"""The gauntlet's validate stage in the sandbox: the strategy is backtested and walk-forwarded on stored bars in
the sandbox worker (no network, no writes, no subprocess; trader/simulation/sandbox_worker.py), and only its
numbers come back — this process stores the run and walk-forward and runs the promotion checklist without ever
importing the strategy file. Bars travel to the child as a numpy ``.npz`` (no pickle), results as JSON."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from trader.config import PromotionConfig
    from trader.data.store import DuckStore
    from trader.simulation.backtester import BacktestResult
    from trader.simulation.walkforward import WalkForwardResult


def write_bars(path: Path, bars: dict[int, pd.DataFrame]) -> None:
    """Bars as plain arrays (``{conId}_ts`` in UTC ns, ``{conId}_open`` …) for `sandbox_worker._read_bars`."""
    import numpy as np

    arrays = {}
    for c, df in bars.items():
        idx = df.index.tz_convert("UTC") if df.index.tz is not None else df.index.tz_localize("UTC")
        arrays[f"{int(c)}_ts"] = idx.as_unit("ns").asi8
        for k in ("open", "high", "low", "close", "volume"):
            arrays[f"{int(c)}_{k}"] = df[k].to_numpy(float) if k in df else np.zeros(len(df))
    np.savez(path, **arrays)


def result_from(doc: dict[str, Any]) -> BacktestResult:
    """A `BacktestResult` from the worker's ``run`` answer (what `save_run` stores)."""
    import pandas as pd

    from trader.simulation.backtester import BacktestResult, Trade

    idx = pd.DatetimeIndex(pd.to_datetime(doc["equity_ns"], unit="ns", utc=True))
    trades = [Trade(**{**t, "entry_time": pd.Timestamp(t["entry_time"]), "exit_time": pd.Timestamp(t["exit_time"])})
              for t in doc["trades"]]
    return BacktestResult(pd.Series(doc["equity"], index=idx, dtype=float), trades, pd.Series(dtype=float),
                          float(doc["turnover"]), float(doc["initial_capital"]), doc["mode"], doc["metrics"])


def walkforward_from(doc: dict[str, Any]) -> WalkForwardResult:
    """A `WalkForwardResult` from the worker's ``walk_forward`` answer (what `save_walkforward` stores)."""
    import pandas as pd

    from trader.simulation.walkforward import PBOResult, WalkForwardResult, WindowResult

    return WalkForwardResult([WindowResult(**w) for w in doc["windows"]], doc["summary"], pd.Series(dtype=float),
                             PBOResult(**doc["pbo"]) if doc.get("pbo") else None, int(doc.get("grid_size", 1)),
                             doc.get("settings") or {})


def sandboxed_validate(store: DuckStore, strategies_root: Path, strategy_file: str, class_name: str | None,
                       bars: dict[int, pd.DataFrame], *, bar_size: str, criteria: PromotionConfig,
                       data: dict[str, Any], data_dir: Path | None, timeout: float = 120.0) -> dict[str, Any]:
    """Backtest (and walk-forward, when the checklist needs out-of-sample) the strategy on `bars` in the sandbox,
    store the run, and return the promotion verdict (`validate.validate_run`). A strategy that fails in the sandbox
    (refused action, exception) gets a failed verdict naming it, and nothing is stored."""
    from trader.simulation.backtester import Costs
    from trader.simulation.gauntlet import _sandbox
    from trader.simulation.store import save_run
    from trader.simulation.validate import validate_run
    from trader.simulation.walkforward import save_walkforward
    from trader.strategy.loader import resolve_strategy_path, source_hash

    path = resolve_strategy_path(strategies_root, strategy_file)
    digest = source_hash(path)  # of the file as it is now: the run records what was tested
    wf = [criteria.walk_forward_train_days, criteria.walk_forward_test_days] if criteria.require_positive_oos \
        else None
    with tempfile.TemporaryDirectory(prefix="mmr-validate-") as tmp:
        bars_file = Path(tmp) / "bars.npz"
        write_bars(bars_file, bars)
        answer = _sandbox(Path(strategies_root), strategy_file, class_name, timeout,
                          validate={"bars_file": str(bars_file), "costs": {}, "capital": 100_000.0,
                                    "walk_forward": wf})
    problems = [f"refused: {v}" for v in answer.get("violations") or []]
    if "error" in answer or problems:
        return {"passed": False, "failed": ["sandbox", *problems, *([answer["error"]] if "error" in answer else [])],
                "run_id": None}
    conids = [int(c) for c in bars]
    run_id = save_run(store, result_from(answer["run"]), strategy=strategy_file, class_name=answer["class_name"],
                      source_hash=digest, params={}, conids=conids, bar_size=bar_size, costs=Costs(), data=data)
    wf_doc, wf_id, note = answer.get("walk_forward"), None, None
    if wf_doc is not None and "error" in wf_doc:
        note = wf_doc["error"]
    elif wf_doc is not None:
        wf_id = save_walkforward(store, walkforward_from(wf_doc), strategy=strategy_file,
                                 class_name=answer["class_name"], conids=conids, bar_size=bar_size, grid={},
                                 run_id=run_id, data=data)
    return validate_run(store, run_id, criteria, walkforward_id=wf_id, data_dir=data_dir, walkforward_note=note)
