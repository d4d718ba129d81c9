"""Persisted backtest runs in state.duckdb (table backtest_runs) and the composite quality score."""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from trader.data.store import DuckStore
from trader.simulation.backtester import BacktestResult, Costs


def quality_score(m: dict[str, float]) -> float:
    """Composite ranking score: Sharpe, scaled down when there are few trades (confidence grows with
    sqrt(trades), capped at 30) and penalized by max drawdown: sharpe * min(1, sqrt(n/30)) * (1 - maxdd)."""
    n = m.get("trade_count", 0.0)
    return float(m.get("sharpe", 0.0) * min(1.0, math.sqrt(n / 30.0)) * (1.0 - min(m.get("max_drawdown", 0.0), 1.0)))


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def save_run(store: DuckStore, result: BacktestResult, *, strategy: str, class_name: str, source_hash: str,
             params: dict, conids: list[int], bar_size: str, costs: Costs) -> str:
    """Persist one run; returns its id (8 hex chars)."""
    run_id = uuid.uuid4().hex[:8]
    eq = result.equity
    trades = [{k: (str(v) if k.endswith("_time") else v) for k, v in asdict(t).items()} for t in result.trades]
    store.execute(
        "INSERT INTO backtest_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE)",
        [run_id, datetime.now(UTC), strategy, class_name, source_hash, json.dumps(params, default=str),
         json.dumps(conids), eq.index[0].to_pydatetime(), eq.index[-1].to_pydatetime(), bar_size,
         json.dumps(asdict(costs)), result.initial_capital, result.mode,
         json.dumps({k: _finite(v) for k, v in result.metrics.items()}), json.dumps(trades),
         json.dumps({"t": [str(t) for t in eq.index], "v": eq.round(6).tolist()}),
         quality_score(result.metrics)])
    return run_id


def list_runs(store: DuckStore, include_archived: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    """Runs ranked by quality score (best first), summary columns only."""
    where = "" if include_archived else "WHERE NOT archived"
    df = store.fetch_df(f"SELECT id, created_at, strategy, class_name, conids, bar_size, score, metrics, archived "
                        f"FROM backtest_runs {where} ORDER BY score DESC LIMIT ?", [limit])
    out = []
    for r in df.to_dict("records"):
        m = json.loads(r.pop("metrics"))
        r["created_at"] = str(r["created_at"])
        r["conids"] = json.loads(r["conids"])
        r.update({k: m.get(k) for k in ("total_return", "sharpe", "max_drawdown", "trade_count")})
        out.append(r)
    return out


def get_run(store: DuckStore, run_id: str) -> dict[str, Any]:
    """One run in full (JSON columns decoded); KeyError when unknown."""
    df = store.fetch_df("SELECT * FROM backtest_runs WHERE id = ?", [run_id])
    if df.empty:
        raise KeyError(f"no backtest run {run_id!r}")
    r = df.to_dict("records")[0]
    for k in ("params", "conids", "costs", "metrics", "trades", "equity"):
        r[k] = json.loads(r[k])
    for k in ("created_at", "start_ts", "end_ts"):
        r[k] = str(r[k])
    return r


def set_archived(store: DuckStore, run_ids: list[str], archived: bool) -> int:
    """Archive or unarchive runs; returns how many exist."""
    n = 0
    for rid in run_ids:
        get_run(store, rid)
        store.execute("UPDATE backtest_runs SET archived = ? WHERE id = ?", [archived, rid])
        n += 1
    return n
