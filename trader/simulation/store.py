"""Persisted backtest runs in research.duckdb (table backtest_runs) and the composite quality score."""
from __future__ import annotations

import json
import math
import uuid
import zlib
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from trader.data.store import DuckStore
from trader.simulation.backtester import BacktestResult, Costs


def quality_score(m: dict[str, float]) -> float:
    """Composite ranking score: Sharpe, scaled down when there are few trades (confidence grows with
    sqrt(trades), capped at 30) and penalized by max drawdown: sharpe * min(1, sqrt(n/30)) * (1 - maxdd)."""
    n = m.get("trade_count", 0.0)
    return float(m.get("sharpe", 0.0) * min(1.0, math.sqrt(n / 30.0)) * (1.0 - min(m.get("max_drawdown", 0.0), 1.0)))


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


RUN_COLUMNS = ("id", "created_at", "strategy", "class_name", "source_hash", "params", "conids", "start_ts",
               "end_ts", "bar_size", "costs", "capital", "mode", "metrics", "trades", "equity", "score", "archived",
               "sweep_id", "sweep_job", "combo_key", "provenance", "coverage", "execution", "moments", "equity_v", "equity_seg",
               "trades_z")
EXECUTIONS = ("backtest", "live")  # the backtester's sizing, or `--execution live`: the live runtime's rules


def new_run_id() -> str:
    """A fresh run id (12 hex chars: 48 random bits). 8 chars (32 bits) collided at a nightly sweep's scale: a
    ~5% chance over 21,000 runs in one store, which stopped a 10,000-run sweep on a duplicate key."""
    return uuid.uuid4().hex[:12]


def metrics_json(metrics: dict[str, float]) -> str:
    """Metrics as stored: JSON with non-finite values (inf profit factor) as null."""
    return json.dumps({k: _finite(v) for k, v in metrics.items()})


def trades_json(trades: list[dict[str, Any]]) -> str:
    """Trades as stored: one JSON object per round trip, timestamps as strings."""
    return json.dumps([{k: (str(v) if k.endswith("_time") else v) for k, v in t.items()} for t in trades])


# Trades JSON this long or longer is stored zlib-compressed (`trades_z`; see RESEARCH_TRADES_Z_DDL for why); a
# daily-bar run's few KB stay text (compressing them would cost a sweep CPU for nothing).
TRADES_Z_MIN = 32 << 10


def pack_trades(text: bytes) -> dict[str, Any]:
    """A run's trades JSON as its stored columns: ``{"trades_json": text, "trades_z": None}`` below TRADES_Z_MIN,
    else ``{"trades_json": "", "trades_z": zlib level 1}`` (~5x smaller, ~4 ms a MB)."""
    if len(text) < TRADES_Z_MIN:
        return {"trades_json": text.decode(), "trades_z": None}
    return {"trades_json": "", "trades_z": zlib.compress(text, 1)}


def stored_trades(trades: str | None, trades_z: Any) -> list[dict[str, Any]]:
    """The trades of a stored run from its ``trades`` text or, when set, its compressed ``trades_z``."""
    if _present(trades_z):
        return json.loads(zlib.decompress(trades_z))
    return json.loads(trades or "[]")


def save_run(store: DuckStore, result: BacktestResult, *, strategy: str, class_name: str, source_hash: str,
             params: dict, conids: list[int], bar_size: str, costs: Costs, sweep_id: str | None = None,
             sweep_job: str | None = None, combo_key: str | None = None,
             data: dict[str, Any] | None = None, execution: str = "backtest") -> str:
    """Persist one run; returns its id (12 hex chars). `data` is `trader.simulation.coverage.data_report` of its
    bars (provenance and coverage are stored with the run); `execution` one of `EXECUTIONS`. Sweeps insert their
    runs in batches (trader.simulation.sweep)."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    run_id = new_run_id()
    eq = result.equity
    store.execute(
        f"INSERT INTO backtest_runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
        [run_id, datetime.now(UTC), strategy, class_name, source_hash, json.dumps(params, default=str),
         json.dumps(conids), eq.index[0].to_pydatetime(), eq.index[-1].to_pydatetime(), bar_size,
         json.dumps(asdict(costs)), result.initial_capital, result.mode, metrics_json(result.metrics),
         trades_json([asdict(t) for t in result.trades]),
         json.dumps({"t": [str(t) for t in eq.index], "v": eq.round(6).tolist()}),
         quality_score(result.metrics), False, sweep_id, sweep_job, combo_key,
         (data or {}).get("provenance"), json.dumps((data or {}).get("coverage") or []), execution, None, None, None,
         None])
    return run_id


def list_runs(store: DuckStore, include_archived: bool = False, limit: int = 50,
              sweep_id: str | None = None) -> list[dict[str, Any]]:
    """Runs ranked by quality score (best first), summary columns only; `sweep_id` keeps one sweep's runs."""
    where, args = [], []
    if not include_archived:
        where.append("NOT archived")
    if sweep_id is not None:
        where.append("sweep_id = ?")
        args.append(sweep_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    df = store.fetch_df(f"SELECT id, created_at, strategy, class_name, conids, bar_size, score, metrics, archived, "
                        f"sweep_id, provenance, coverage, execution FROM backtest_runs {clause} ORDER BY score DESC, id LIMIT ?",
                        [*args, limit])
    out = []
    for r in df.to_dict("records"):
        m = json.loads(r.pop("metrics"))
        r["created_at"] = str(r["created_at"])
        r["conids"] = json.loads(r["conids"])
        _trust_fields(r)
        r.pop("coverage")  # the list shows the lowest ratio (min_coverage); `backtests show` has the detail
        r.update({k: m.get(k) for k in ("total_return", "sharpe", "max_drawdown", "trade_count")})
        out.append(r)
    return out


def _trust_fields(r: dict[str, Any]) -> None:
    """Decode a row's provenance/coverage in place: ``provenance`` ("unknown" for runs older than issue 20),
    ``coverage`` (per conId), ``min_coverage`` (the lowest ratio, None when unmeasured) and ``execution``
    ("backtest" or "live"; "unknown" for runs stored before it was recorded)."""
    from trader.simulation.coverage import UNKNOWN, coverage_summary

    r["execution"] = r.get("execution") if isinstance(r.get("execution"), str) else UNKNOWN
    r["provenance"] = r.get("provenance") if isinstance(r.get("provenance"), str) else UNKNOWN
    cov = r.get("coverage")
    r["coverage"] = json.loads(cov) if isinstance(cov, str) else []
    r["min_coverage"] = coverage_summary(r["coverage"])


def equity_values(equity: dict[str, Any] | str | None, blob: bytes | None, segments: bytes | None = None,
                  close: bytes | None = None) -> list[float]:
    """A stored run's equity values: from its segments (`equity_seg`) and its job's closes
    (sweep_equity_index.close) when it has them (grid-pass sweep runs), else the `equity_v` bytes (float64,
    little-endian: other sweep runs), else the "v" list of the `equity` JSON (every other run, and sweep runs
    stored before the bytes existed)."""
    if _present(segments) and _present(close):
        from trader.simulation.fill_grid import equity_from_segments

        curve = equity_from_segments(np.frombuffer(segments, dtype="<f8"), np.frombuffer(close, dtype="<f8"))
        return curve.round(6).tolist()  # rounded as every stored curve is
    if _present(blob):
        return np.frombuffer(blob, dtype="<f8").tolist()
    doc = json.loads(equity) if isinstance(equity, str) else (equity or {})
    return doc.get("v") or []


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def get_run(store: DuckStore, run_id: str) -> dict[str, Any]:
    """One run in full (JSON columns decoded); NotFound (a KeyError) when unknown."""
    from trader.errors import NotFound

    df = store.fetch_df("SELECT * FROM backtest_runs WHERE id = ?", [run_id])
    if df.empty:
        raise NotFound(f"no backtest run {run_id!r} (list them with `mmr backtests`)")
    r = df.to_dict("records")[0]
    r["trades"] = stored_trades(r["trades"], r.pop("trades_z", None))
    for k in ("params", "conids", "costs", "metrics", "equity"):
        r[k] = json.loads(r[k])
    blob, segments = r.pop("equity_v", None), r.pop("equity_seg", None)
    _trust_fields(r)
    close = None
    if "t" not in r["equity"] and r.get("sweep_id"):  # a sweep run: timestamps (and closes) are stored once per job
        t = store.execute("SELECT t, close FROM sweep_equity_index WHERE sweep_id = ? AND sweep_job = ?",
                          [r["sweep_id"], r["sweep_job"]], write=False)
        close = t[0][1] if t else None
        r["equity"] = {"t": json.loads(t[0][0]) if t else [], **r["equity"]}
    r["equity"]["v"] = equity_values(r["equity"], blob, segments, close)
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
