"""Reading stored sweeps back: the list of sweeps, one sweep's row, its leaderboard (runs best first with the
Deflated Sharpe over its job's trials). Re-exported by `trader.simulation.sweep`, where callers import them from.
"""
from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from trader.data.store import DuckStore
from trader.errors import SweepNotFound
from trader.simulation.sweep_rank import deflated_sharpes, leaderboard_rows, moments


def job_deflated_sharpes(returns: list[np.ndarray]) -> list[float]:
    """Deflated Sharpe of each run of one job, the trials being every run of that job (per-period Sharpes):
    the same numbers as `stats.deflated_sharpe` run by run (`sweep_rank`)."""
    return deflated_sharpes([moments(r) for r in returns])


def _finite_or_none(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def leaderboard(store: DuckStore, sweep_id: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs of one sweep, best first by quality_score, each with its Deflated Sharpe Ratio corrected for the
    number of runs in its job, plus the skew and excess kurtosis of its per-period returns."""
    get_sweep(store, sweep_id)  # unknown id -> SweepNotFound
    # The digest and the CLI both ask right after a sweep: reuse the rows while the sweep's runs are unchanged.
    state = store.execute("SELECT count(*), max(created_at) FROM backtest_runs WHERE sweep_id = ?", [sweep_id],
                          write=False)[0]
    key = (str(store.path), sweep_id, int(state[0]), str(state[1]))
    if key not in _LEADERBOARD_CACHE:
        _LEADERBOARD_CACHE.clear()
        _LEADERBOARD_CACHE[key] = leaderboard_rows(store, sweep_id)
    rows = _LEADERBOARD_CACHE[key]
    rows = rows[:limit] if limit is not None else rows
    # Callers get their own rows: only params is mutable (a deepcopy of every row cost more than ranking them).
    return [{"rank": i + 1, **r, "params": copy.deepcopy(r["params"])} for i, r in enumerate(rows)]


_LEADERBOARD_CACHE: dict[tuple, list[dict[str, Any]]] = {}


def _sweep_row(r: dict[str, Any]) -> dict[str, Any]:
    for k in ("created_at", "finished_at"):
        r[k] = None if r.get(k) is None or pd.isna(r[k]) else str(r[k])
    for k in ("total", "done", "failed"):
        r[k] = int(r[k])
    return r


def _data_summary(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """What a sweep's bars were worth, for lists: the worst provenance of its jobs and their data warnings."""
    from trader.simulation.coverage import SIM_MODEL, UNKNOWN, worst

    # A job stored before provenance was recorded still says which conIds had simulated bars ("data").
    provs = [j.get("provenance") or (SIM_MODEL if "simulated" in (j.get("data") or {}).values() else UNKNOWN)
             for j in jobs]
    sims = [f"job {j.get('name')}: conId {c} used SIMULATED prices" for j in jobs
            for c, src in (j.get("data") or {}).items() if src == "simulated" and not j.get("warnings")]
    return {"provenance": worst(provs), "data_warnings": sims + [f"job {j.get('name')}: {w}" for j in jobs
                                                                 for w in j.get("warnings") or []]}


def list_sweeps(store: DuckStore, limit: int = 50) -> list[dict[str, Any]]:
    """Sweeps, newest first: id, name, status, created_at, finished_at, total, done, failed, elapsed_s,
    digest_path and the best run's score."""
    df = store.fetch_df(
        "SELECT s.id, s.name, s.status, s.created_at, s.finished_at, s.total, s.done, s.failed, s.elapsed_s, "
        "s.digest_path, (SELECT max(score) FROM backtest_runs r WHERE r.sweep_id = s.id) AS best_score, s.jobs "
        "FROM sweeps s ORDER BY s.created_at DESC LIMIT ?", [limit])
    out = []
    for r in df.to_dict("records"):
        r = _sweep_row(r)
        r.update(_data_summary(json.loads(r.pop("jobs"))))
        r["best_score"] = _finite_or_none(r["best_score"]) if r["best_score"] is not None else None
        out.append(r)
    return out


_SWEEP_COLUMNS = "id, name, status, created_at, finished_at, jobs, total, done, failed, elapsed_s, digest_path, errors"


def get_sweep(store: DuckStore, sweep_id: str) -> dict[str, Any]:
    """One sweep: id, name, status, created_at, finished_at, jobs (as given), total, done, failed, elapsed_s,
    digest_path and errors (the last failed combos). SweepNotFound when unknown."""
    # A plain row, not a DataFrame (~0.3 against ~4 ms; a sweep's run asks ~4 times): the same values, NULL as
    # None (a frame gave NaN for a NULL text or number; JSON output writes both as null).
    with store.connect(write=False) as con:
        cur = con.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?", [sweep_id])
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
    if row is None:
        raise SweepNotFound(f"no sweep {sweep_id!r}")
    r = _sweep_row(dict(zip(names, row, strict=True)))
    r["jobs"] = json.loads(r["jobs"])
    r["errors"] = json.loads(r["errors"]) if r.get("errors") else []
    return r
