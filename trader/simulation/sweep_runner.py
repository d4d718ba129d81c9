"""Running a sweep's chunks: the worker side (combos against bars prepared once per worker) and the local
executors (a process pool, or in-process for ``workers=1``); the Dask executor is in `sweep_dask`.

A job's *payload* is plain data built once by the parent (`job_payload`): the strategy's file, class name and
source text, the bars of each conId as numpy arrays, and the run settings. Workers turn a payload into
DataFrames and a strategy class ONCE (cached under the payload's token) and then run any number of chunks
against it; a task carries only (payload reference, list of params).

What crosses process boundaries is plain data only — dicts, lists, strings and numpy arrays — and the functions
here are module-level, so `multiprocessing` and Dask ship them by name (both frameworks use pickle for their own
task messages; MMR never pickles its own state and nothing here is persisted that way).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import signal
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from trader.simulation.backtester import COLUMNS, Costs, _prepare, is_panel, run_backtest, target_series
from trader.simulation.store import pack_trades
from trader.simulation.sweep_rank import moments, period_returns
from trader.simulation.trade_text import round_trip_texts, stamp_texts, timestamp_texts
from trader.strategy.exits import apply_time_exits, strategy_rule

# token -> (strategy class, {conid: prepared DataFrame}); one entry per job per worker process.
_PREPARED: dict[str, tuple[type, dict[int, pd.DataFrame]]] = {}
_PREPARED_LOCK = threading.Lock()
_MAX_PREPARED = 16  # oldest entries are dropped first (dicts keep insertion order)


def _numpy_scalar(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_numpy_scalar)
# Payloads handed to a local pool's workers by the initializer (index = job index).
_POOL_PAYLOADS: list[dict[str, Any]] = []


# json.dumps with these options builds an encoder per call; one built once writes the same text (~2.3 -> ~1.5 us
# a call, twice per run of a sweep).
_COMBO_KEY = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
PARAMS_JSON = json.JSONEncoder(default=str).encode  # json.dumps(params, default=str): a run's stored params


def combo_key(params: dict[str, Any]) -> str:
    """Canonical JSON of one combination's params (sorted keys): identifies the combo inside its job."""
    return _COMBO_KEY(params)


def bars_to_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """A prepared bar frame as plain arrays: int64 UTC nanoseconds under "ts" plus one float64 array per column."""
    out = {"ts": df.index.as_unit("ns").asi8.copy()}
    out.update({k: np.ascontiguousarray(df[k].to_numpy(dtype=float)) for k in COLUMNS})
    return out


def arrays_to_bars(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """Inverse of `bars_to_arrays`."""
    idx = pd.DatetimeIndex(pd.to_datetime(arrays["ts"], unit="ns", utc=True), name="ts")
    return pd.DataFrame({k: np.asarray(arrays[k], dtype=float) for k in COLUMNS}, index=idx)


def job_payload(token: str, *, strategies_root: Path, strategy_file: str, class_name: str | None, source: str,
                bars: dict[int, pd.DataFrame], capital: float, quantity: float | None, costs: Costs,
                mode: str) -> dict[str, Any]:
    """Everything a worker needs for one job, as plain data. `bars` must be prepared (`backtester._prepare`).
    The token workers cache the prepared job under also covers the bars' and the source's content, so a resumed
    sweep whose bars changed is never served stale frames."""
    arrays = {int(c): bars_to_arrays(df) for c, df in bars.items()}
    h = hashlib.sha256(source.encode())
    for c, a in arrays.items():
        h.update(str(c).encode())
        for k in ("ts", *COLUMNS):
            h.update(a[k].tobytes())
    return {"token": f"{token}:{h.hexdigest()[:16]}", "root": str(strategies_root), "strategy_file": strategy_file,
            "class_name": class_name, "source": source, "bars": arrays,
            "capital": float(capital), "quantity": quantity, "costs": asdict(costs), "mode": mode}


def _strategy_class(payload: dict[str, Any]) -> type:
    """Load the job's class from strategies_root when this host has the same file, else from the shipped source
    (a Dask worker on another machine), written to a private temp dir and loaded through the same sandbox."""
    from trader.strategy.loader import load_strategy_class, resolve_strategy_path

    root, rel, source = payload["root"], payload["strategy_file"], payload["source"]
    try:
        if resolve_strategy_path(root, rel).read_text() == source:
            return load_strategy_class(root, rel, payload["class_name"])
    except Exception:  # noqa: BLE001 - no such file here: use the shipped source below
        pass
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    tmp = Path(tempfile.gettempdir()) / f"mmr_sweep_strategies_{digest}"
    target = tmp / Path(rel).name
    if not target.exists():
        tmp.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    return load_strategy_class(tmp, target.name, payload["class_name"])


def _prepared(payload: dict[str, Any]) -> tuple[type, dict[int, pd.DataFrame]]:
    token = payload["token"]
    hit = _PREPARED.get(token)
    if hit is None:
        with _PREPARED_LOCK:  # Dask thread workers share this process
            hit = _PREPARED.get(token)
            if hit is None:
                frames = {int(c): _prepare(arrays_to_bars(a)) for c, a in payload["bars"].items()}
                while len(_PREPARED) >= _MAX_PREPARED:  # long-lived Dask workers see many sweeps
                    _PREPARED.pop(next(iter(_PREPARED)))
                hit = _PREPARED[token] = (_strategy_class(payload), frames)
    return hit


def run_one(payload: dict[str, Any], params: dict[str, Any],
            targets: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
    """One backtest of the job with `params`: a compact result (metrics and trades as JSON text, the equity values
    as float64 bytes — `equity_v` as stored —, mode) or {"params", "ok": False, "error"} when the strategy raised. `targets`: this combo's column of a
    grid pass (`grid_targets`)."""
    cls, frames = _prepared(payload)
    try:
        result = run_backtest(cls().with_params(**params), frames, capital=payload["capital"],
                              quantity=payload["quantity"], costs=Costs(**payload["costs"]), mode=payload["mode"],
                              targets=targets)
    except Exception as exc:  # noqa: BLE001 - one bad combination must not sink the sweep
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"params": params, "ok": False, "error": tb}
    trades = _trade_dicts(result, payload, frames)
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.metrics.items()}
    # msgspec's JSON encoder is ~10x faster than json.dumps on the float lists (same values, compact spacing).
    encode = _ENCODER.encode
    equity = result.equity.round(6).to_numpy()  # as stored: the leaderboard's moments are those of the stored curve
    return {"params": params, "ok": True, "metrics": result.metrics, "metrics_json": encode(metrics).decode(),
            **pack_trades(encode(trades)), "equity_f64": equity.astype("<f8").tobytes(),
            "moments_json": encode(moments(period_returns(payload["capital"], equity))).decode(),
            "mode": result.mode}


_STAMP_TEXT: dict[tuple[str, int], list[str]] = {}  # (job token, conId) -> str() of each bar's timestamp
_STAMP_JSON: dict[tuple[str, int], np.ndarray] = {}  # the same as JSON strings (`trade_text.stamp_texts`)


def _stamp_texts(payload: dict[str, Any], frames: dict[int, pd.DataFrame], con_id: int) -> list[str]:
    """str() of each of the conId's bar timestamps, once per job and worker (a str() per trade cost more than the
    backtest)."""
    key = (payload["token"], con_id)
    if key not in _STAMP_TEXT:
        if len(_STAMP_TEXT) >= 4 * _MAX_PREPARED:
            _STAMP_TEXT.pop(next(iter(_STAMP_TEXT)))
        _STAMP_TEXT[key] = timestamp_texts(frames[con_id].index)
    return _STAMP_TEXT[key]


def seed_stamp_texts(payload: dict[str, Any], con_id: int, texts: list[str]) -> None:
    """Give this process's `_stamp_texts` of a job's conId, when the caller already has them (str() of each bar
    of the prepared bars, in order): the sweep's parent computes them for the job's equity index."""
    _STAMP_TEXT[(payload["token"], int(con_id))] = texts


def _stamp_json(payload: dict[str, Any], frames: dict[int, pd.DataFrame], con_id: int) -> np.ndarray:
    """`_stamp_texts` encoded as JSON strings, once per job and worker (for `trade_text.round_trip_texts`)."""
    key = (payload["token"], con_id)
    if key not in _STAMP_JSON:
        if len(_STAMP_JSON) >= 4 * _MAX_PREPARED:
            _STAMP_JSON.pop(next(iter(_STAMP_JSON)))
        _STAMP_JSON[key] = stamp_texts(_ENCODER.encode, _stamp_texts(payload, frames, con_id))
    return _STAMP_JSON[key]


def _row_dicts(con: list[int], rows: np.ndarray, texts: dict[int, list[str]]) -> list[dict[str, Any]]:
    """The stored form of round trips given as the fill loop's rows (`TRADE_ROW`), conId per row."""
    sides = rows[:, 0].astype(np.int64).tolist()
    e_bar, x_bar = rows[:, 2].astype(np.int64).tolist(), rows[:, 4].astype(np.int64).tolist()
    q, e_px, x_px, comm, pnl, ret = (rows[:, k].tolist() for k in (1, 3, 5, 6, 7, 8))
    return [{"con_id": con[k], "side": sides[k], "quantity": q[k], "entry_time": texts[con[k]][e_bar[k]],
             "entry_price": e_px[k], "exit_time": texts[con[k]][x_bar[k]], "exit_price": x_px[k],
             "commission": comm[k], "pnl": pnl[k], "return_pct": ret[k]} for k in range(len(con))]


def _trade_dicts(result: Any, payload: dict[str, Any], frames: dict[int, pd.DataFrame]) -> list[dict[str, Any]]:
    """The stored form of a run's round trips, straight from the fill loop's rows: timestamps as text come from
    a per-job table of the bars' stamps."""
    table = result.trade_table()
    if table is None:  # already built as Trades: field by field (dataclasses.asdict deep-copies Timestamps)
        return [{"con_id": t.con_id, "side": t.side, "quantity": t.quantity, "entry_time": str(t.entry_time),
                 "entry_price": t.entry_price, "exit_time": str(t.exit_time), "exit_price": t.exit_price,
                 "commission": t.commission, "pnl": t.pnl, "return_pct": t.return_pct} for t in result.trades]
    con, rows = table
    cons = con.tolist()
    return _row_dicts(cons, rows, {c: _stamp_texts(payload, frames, c) for c in set(cons)})


def run_chunk(payload: dict[str, Any], params_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run several combinations of one job (the unit of work shipped to a worker): in one pass over the grid
    when the strategy can (`grid_targets`) — all columns through one fill pass when the job fits it
    (`run_grid`) — else combo by combo."""
    grid = chunk_targets(payload, params_list)
    if grid is None:
        return [run_one(payload, p) for p in params_list]
    done = run_grid(payload, params_list, grid)
    if done is not None:
        return done
    return [run_one(payload, p, targets={c: t[:, j] for c, t in grid.items()}) for j, p in enumerate(params_list)]


def chunk_targets(payload: dict[str, Any], params_list: list[dict[str, Any]]) -> dict[int, np.ndarray] | None:
    """The targets of a chunk's combos as columns (see `grid_targets`): from the strategy's `signals_grid`, or —
    for a vectorized strategy without one on a job that fits one fill pass (`grid_fits`) — its `signals` per
    combo stacked, so the fills, metrics and moments still run once for the chunk. None: run combo by combo."""
    if len(params_list) < 2:
        return None
    grid = grid_targets(payload, params_list)
    if grid is not None:
        return grid
    cls, frames = _prepared(payload)
    if callable(getattr(cls, "signals_grid", None)) or is_panel(cls()) or \
            payload["mode"] not in ("vectorized", "auto") or not cls().vectorized or not grid_fits(payload):
        return None  # a signals_grid that failed or disagreed: each combo reports on its own
    ((con_id, df),) = frames.items()
    try:  # each combo's own signals and time exits, as run_backtest decides them
        cols = [target_series(cls().with_params(**p), df.copy(), "vectorized")[0] for p in params_list]
    except Exception:  # noqa: BLE001 - the per-combo path reports each combo's own error
        return None
    return {con_id: np.stack(cols).T}


def grid_fits(payload: dict[str, Any]) -> bool:
    """True when a job's combos can share one fill pass (`fill_grid.simulate_grid`): one conId, no square-root
    impact (the only settings the per-run loop has and the grid pass does not)."""
    from trader.simulation.fill_grid import grid_supported

    return len(payload["bars"]) == 1 and grid_supported(Costs(**payload["costs"]), payload["quantity"])


def run_grid(payload: dict[str, Any], params_list: list[dict[str, Any]], grid: dict[int, np.ndarray]
             ) -> list[dict[str, Any]] | None:
    """`run_one` of every combo of a grid pass at once: the fills of all columns in one numpy pass, metrics and
    moments over the equity matrix, the same stored results bit for bit (tests/simulation/test_sweep_grid.py),
    except that each curve comes as its constant-state segments ("equity_seg", `fill_grid.GridFills.segments`)
    instead of every bar's value. None when the job does not fit (`grid_fits`)."""
    if not grid_fits(payload):
        return None
    from trader.simulation.fill_grid import grid_metrics, grid_moments, simulate_grid

    _, frames = _prepared(payload)
    (con_id, df), = frames.items()
    capital = payload["capital"]
    fills = simulate_grid(df["open"].to_numpy(), df["close"].to_numpy(), grid[con_id], capital=capital,
                          quantity=payload["quantity"], costs=Costs(**payload["costs"]), positions=False)
    all_metrics = grid_metrics(fills, df.index, capital)
    # As stored (segments rebuilt over the closes, rounded): the leaderboard's moments are the stored curve's.
    all_moments = grid_moments(fills.equity.round(6), capital)
    encode = _ENCODER.encode
    # The trades' JSON for every run at once: the bytes msgspec writes for `_row_dicts` of each run.
    trades = round_trip_texts(encode, con_id, fills.trades, _stamp_json(payload, frames, con_id))
    out = []
    for j, params in enumerate(params_list):
        m = all_metrics[j]
        # msgspec writes a non-finite float (an infinite profit factor) as null, as run_one's cleaned dict does
        out.append({"params": params, "ok": True, "metrics": m, "metrics_json": encode(m).decode(),
                    **pack_trades(trades[j]), "equity_seg": fills.segments[j].astype("<f8").tobytes(),
                    "moments_json": encode(all_moments[j]).decode(), "mode": "vectorized"})
    return out


def grid_targets(payload: dict[str, Any], params_list: list[dict[str, Any]]) -> dict[int, np.ndarray] | None:
    """Per conId, the targets of every combo as columns of one 2-D array, from the strategy's optional
    `signals_grid(prices, params_list)` (one pass that shares indicators between combos; column j must equal
    `signals` with params_list[j]), time exits applied per combo. None — run combo by combo — when the strategy
    has no `signals_grid`, the job is not vectorized, or the grid pass fails (each combo then reports its own
    error)."""
    cls, frames = _prepared(payload)
    mode = payload["mode"]
    if not callable(getattr(cls, "signals_grid", None)) or is_panel(cls()) or \
            mode not in ("vectorized", "auto") or not cls().vectorized:
        return None
    # No time exit anywhere: the class sets none and no combo sets one.
    no_exits = strategy_rule(cls()) is None and not any(
        k in p for p in params_list for k in ("MAX_HOLD_BARS", "CLOSE_BY_TIME"))
    try:
        out = {}
        for c, df in frames.items():
            grid = np.asarray(cls().signals_grid(df.copy(), params_list), dtype=float)  # a copy, as run_backtest
            if grid.shape != (len(df), len(params_list)):
                return None
            # Combos first in memory: each combo's targets contiguous for the time exits and the fill pass
            # (`simulate_grid` reads the combos-first array without copying it).
            by_combo = np.ascontiguousarray(grid.T)
            if no_exits:  # nothing to apply (a strategy per combo only to find that out cost ~0.1 ms a combo)
                cols = list(by_combo)
            else:
                cols = [apply_time_exits(cls().with_params(**p), by_combo[j], df.index)
                        for j, p in enumerate(params_list)]
            # The grid must be the strategy's `signals` (what the lookahead check vets): the first and last
            # combos are checked against it, and a mismatch runs the chunk combo by combo.
            for j in {0, len(params_list) - 1}:
                want = target_series(cls().with_params(**params_list[j]), df.copy(), "vectorized")[0]
                if not np.array_equal(want, cols[j], equal_nan=True):
                    return None
            out[c] = (by_combo if no_exits else np.stack(cols)).T  # bars × combos, a view of the combos-first array
        return out
    except Exception:  # noqa: BLE001 - the per-combo path reports each combo's own error
        return None


def init_pool_worker(payloads: list[dict[str, Any]]) -> None:
    """ProcessPoolExecutor initializer: keep the payloads (bars arrive once per worker) and leave Ctrl-C to the
    parent, which cancels the pool and records the sweep as interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _POOL_PAYLOADS[:] = payloads


def run_pool_chunk(job_index: int, params_list: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """A local-pool task: (job index, params) only; the bars are already in this worker."""
    return job_index, run_chunk(_POOL_PAYLOADS[job_index], params_list)


# --------------------------------------------------------------------------- executors (parent side)


def chunk_tasks(todo: list[tuple[int, dict[str, Any]]], size: int) -> list[tuple[int, list[dict[str, Any]]]]:
    """Group (job index, params) into tasks of up to `size` combos of the same job."""
    out: list[tuple[int, list[dict[str, Any]]]] = []
    for job_index, group in itertools.groupby(todo, key=lambda t: t[0]):
        params = [p for _, p in group]
        out.extend((job_index, params[i:i + size]) for i in range(0, len(params), size))
    return out


def in_flight(workers: int) -> int:
    """How many chunks an executor keeps submitted but not yet taken: enough that no worker waits for its next
    chunk, few enough that results the writer has not taken yet stay bounded. Without this bound every chunk was
    submitted at once and, while the writer's insert ran, finished chunks piled up in the parent (~1 MB a
    one-minute run, ~80 runs a chunk): the 10,000-run one-minute sweep peaked at 5.6 GiB, 3.7 of it the parent."""
    return 2 * max(1, workers)


def run_local_pool(payloads: list[dict[str, Any]], tasks: list[tuple[int, list[dict[str, Any]]]], workers: int,
                   ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Yield chunk results from a local process pool; the bars reach each worker once via the initializer. At
    most `in_flight(workers)` chunks are submitted and not yet taken (back-pressure from the writer)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # fork hands the payloads over without copying them per worker; other start methods send them once each.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_pool_worker,
                               initargs=(payloads,))
    todo = iter(tasks)
    pending: set[Any] = set()
    try:
        while True:
            for j, chunk in itertools.islice(todo, in_flight(workers) - len(pending)):
                pending.add(pool.submit(run_pool_chunk, j, chunk))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            while done:
                # A finished future keeps its chunk's results: drop ours once taken, or they stay in this
                # process until the sweep ends.
                yield done.pop().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_in_process(payloads: list[dict[str, Any]], tasks: list[tuple[int, list[dict[str, Any]]]],
                   ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run the tasks here, one combo at a time (workers=1): progress and interruption are per run (a chunk's grid
    pass is computed up front, each combo's run only when asked for)."""
    for job_index, chunk in tasks:
        payload = payloads[job_index]
        grid = chunk_targets(payload, chunk)
        done = run_grid(payload, chunk, grid) if grid is not None else None
        if done is not None:
            for res in done:
                yield job_index, [res]
            continue
        for j, params in enumerate(chunk):
            targets = {c: t[:, j] for c, t in grid.items()} if grid is not None else None
            yield job_index, [run_one(payload, params, targets=targets)]
