"""Walk-forward validation and the probability of backtest overfitting (PBO by CSCV).

Walk-forward: the bars are cut into rolling (or anchored) windows. In each window every grid combination is
backtested on the in-sample (training) part, the best one by `objective` is picked, and only that one is
measured on the out-of-sample (test) part that follows. Test parts never overlap and always start after their
training part ends, so nothing chosen in a window has seen its test bars. The out-of-sample run is simulated
from the training start (the training bars serve as indicator warm-up, nothing is chosen on them at that
point) and measured from the test start on: equity is rebased to its value at the last training bar, and a
trade counts in the test part when it closes there.

PBO (Bailey, Borwein, López de Prado & Zhu, "The probability of backtest overfitting", 2015): the T × N matrix
of per-period returns of N configurations is split into S blocks; for every one of the C(S, S/2) ways to pick
half the blocks as in-sample (the rest out-of-sample), the in-sample best configuration's out-of-sample rank
is turned into a logit. PBO is the share of logits ≤ 0: how often the in-sample winner is at or below the
out-of-sample median.
"""
from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trader.errors import BacktestError
from trader.simulation.backtester import BacktestResult, Costs, check_backtest_params, run_backtest
from trader.simulation.sweep import expand_grid  # the sweep engine's grid order and checks

if TYPE_CHECKING:
    from trader.data.store import DuckStore
    from trader.strategy.api import Strategy

NO_COSTS = Costs()
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class WindowBounds:
    """One walk-forward window: training [train_start, train_end), test [test_start, test_end) (ends exclusive)."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def split_windows(index: pd.DatetimeIndex, *, train_bars: int | None = None, train_days: float | None = None,
                  test_bars: int | None = None, test_days: float | None = None, step: float | None = None,
                  anchored: bool = False) -> list[WindowBounds]:
    """Walk-forward windows over a sorted timeline, in bars (`train_bars`, `test_bars`) or in calendar days
    (`train_days`, `test_days`). `step` (same unit; default: the test length) must be ≥ the test length so
    test windows never overlap. Anchored windows all train from the first bar. Windows with < 2 training or
    test bars are dropped; an incomplete last test window is not used."""
    in_bars = train_bars is not None and test_bars is not None and train_days is None and test_days is None
    in_days = train_days is not None and test_days is not None and train_bars is None and test_bars is None
    if not (in_bars or in_days):
        raise BacktestError("give train_bars and test_bars, or train_days and test_days")
    train_len = train_bars if in_bars else train_days
    test_len = test_bars if in_bars else test_days
    step = test_len if step is None else step
    assert train_len is not None and test_len is not None
    if min(train_len, test_len, step) <= 0:
        raise BacktestError("window lengths and step must be positive")
    if step < test_len:
        raise BacktestError(f"step ({step}) must be >= the test length ({test_len}): test windows may not overlap")
    idx = pd.DatetimeIndex(index)
    n = len(idx)
    if n < 4:
        return []
    last_end = idx[-1] + pd.Timedelta(1, unit=idx.unit)  # exclusive end just past the last bar

    def pos(ts: pd.Timestamp) -> int:
        return int(idx.searchsorted(ts, side="left"))

    out: list[WindowBounds] = []
    for k in itertools.count():
        if in_bars:
            test_pos = int(train_len + k * step)
            if test_pos + test_len > n:
                break
            train_start = idx[0] if anchored else idx[test_pos - int(train_len)]
            test_start = idx[test_pos]
            test_end = idx[test_pos + int(test_len)] if test_pos + test_len < n else last_end
        else:
            test_start = idx[0] + pd.Timedelta(days=train_len + k * step)
            test_end = test_start + pd.Timedelta(days=test_len)
            if test_end > idx[-1] + pd.Timedelta(days=1):  # the data must reach the window's last day
                break
            train_start = idx[0] if anchored else test_start - pd.Timedelta(days=train_len)
            test_end = min(test_end, last_end)
        if pos(test_start) - pos(train_start) >= 2 and pos(test_end) - pos(test_start) >= 2:
            out.append(WindowBounds(len(out), train_start, test_start, test_start, test_end))
    return out


def _slice(bars: dict[int, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp) -> dict[int, pd.DataFrame]:
    """Each conId's bars in [start, end); conIds with fewer than 2 bars there are left out."""
    out = {}
    for c, df in bars.items():
        part = df[(df.index >= start) & (df.index < end)]
        if len(part) >= 2:
            out[c] = part
    return out


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class _Spec:
    """What every backtest of one walk-forward shares (picklable for a process-pool `map_fn`)."""

    strategy_cls: type
    capital: float
    quantity: float | None
    costs: Costs
    mode: str


def _backtest(spec: _Spec, bars: dict[int, pd.DataFrame], params: dict[str, Any]) -> BacktestResult:
    return run_backtest(spec.strategy_cls().with_params(**params), bars, capital=spec.capital,
                        quantity=spec.quantity, costs=spec.costs, mode=spec.mode)


def _metrics_only(spec: _Spec, bars: dict[int, pd.DataFrame], params: dict[str, Any]) -> dict[str, float]:
    return _backtest(spec, bars, params).metrics


def _returns_only(spec: _Spec, bars: dict[int, pd.DataFrame], params: dict[str, Any]) -> pd.Series:
    eq = _backtest(spec, bars, params).equity
    return eq.pct_change().fillna(eq.iloc[0] / spec.capital - 1.0)


def _objective_value(metrics: dict[str, float], objective: str) -> float:
    if objective not in metrics:
        raise BacktestError(f"unknown objective {objective!r}; one of {sorted(metrics)}")
    v = metrics[objective]
    return v if isinstance(v, (int, float)) and not math.isnan(v) else -math.inf


def _out_of_sample(result: BacktestResult, test_start: pd.Timestamp) -> tuple[BacktestResult, pd.Series]:
    """Cut a run over training+test bars down to the test part: equity rebased at the last training bar,
    trades that close in the test part. Returns the cut result (with metrics) and its per-bar returns."""
    from trader.simulation.metrics import compute_metrics

    eq = result.equity
    before, after = eq[eq.index < test_start], eq[eq.index >= test_start]
    base = float(before.iloc[-1]) if len(before) else result.initial_capital
    trades = [t for t in result.trades if t.exit_time >= test_start]
    notional = sum(t.quantity * (t.entry_price + t.exit_price) for t in trades)
    cut = BacktestResult(equity=after, trades=trades, exposure=result.exposure[result.exposure.index >= test_start],
                         turnover=notional / max(float(after.mean()), 1e-12), initial_capital=base,
                         mode=result.mode)
    cut.metrics = compute_metrics(cut)
    curve = np.concatenate(([base], after.to_numpy(float)))
    return cut, pd.Series(np.diff(curve) / curve[:-1], index=after.index)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window: its bounds, the in-sample winner and how it did in and out of sample."""

    index: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    train_bars: int
    test_bars: int
    best_params: dict[str, Any]
    is_metrics: dict[str, float]
    oos_metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class PBOResult:
    """Probability of backtest overfitting by CSCV, with the numbers behind it."""

    pbo: float
    blocks: int
    combinations: int
    configs: int
    logit_median: float
    oos_loss_rate: float  # share of splits where the in-sample best lost money out of sample (Sharpe < 0)
    meaning: str = ""


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Per-window results, the stitched out-of-sample equity and the in- vs out-of-sample summary."""

    windows: list[WindowResult]
    summary: dict[str, Any]
    oos_equity: pd.Series
    pbo: PBOResult | None = None
    grid_size: int = 1
    settings: dict[str, Any] = field(default_factory=dict)


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _clean(metrics: dict[str, float]) -> dict[str, Any]:
    return {k: _finite(float(v)) for k, v in metrics.items()}


def walk_forward(strategy_cls: type[Strategy], bars: dict[int, pd.DataFrame] | pd.DataFrame,
                 grid: dict[str, list[Any]], *, train_bars: int | None = None, train_days: float | None = None,
                 test_bars: int | None = None, test_days: float | None = None, step: float | None = None,
                 anchored: bool = False, costs: Costs = NO_COSTS, capital: float = 100_000.0,
                 quantity: float | None = None, mode: str = "auto", objective: str = "sharpe",
                 pbo_blocks: int = 16, map_fn: MapFn = map) -> WalkForwardResult:
    """Rolling in-sample optimisation / out-of-sample test (see the module docstring). `map_fn` (e.g. a process
    pool's `map`) runs each window's grid. With ≥ 2 grid combinations the result carries PBO by CSCV over the
    per-bar returns of every combination on the whole sample."""
    from trader.simulation.metrics import periods_per_year

    check_backtest_params(capital=capital, quantity=quantity)  # before any window runs
    if isinstance(bars, pd.DataFrame):
        bars = {0: bars}
    bars = {c: df.sort_index() for c, df in bars.items()}
    combos = expand_grid(grid) if grid else [{}]  # no grid: the strategy's own defaults
    timeline = pd.DatetimeIndex(sorted(set().union(*(df.index for df in bars.values()))))
    bounds = split_windows(timeline, train_bars=train_bars, train_days=train_days, test_bars=test_bars,
                           test_days=test_days, step=step, anchored=anchored)
    if not bounds:
        raise BacktestError(f"no complete walk-forward window fits in {len(timeline)} bars "
                            f"({timeline[0] if len(timeline) else '-'} .. {timeline[-1] if len(timeline) else '-'})")
    spec = _Spec(strategy_cls, capital, quantity, costs, mode)
    windows: list[WindowResult] = []
    oos_parts: list[pd.Series] = []
    for w in bounds:
        train = _slice(bars, w.train_start, w.train_end)
        if not train:
            continue
        scores = list(map_fn(partial(_metrics_only, spec, train), combos))
        best = max(range(len(combos)), key=lambda i: _objective_value(scores[i], objective))  # first wins ties
        run = _backtest(spec, _slice(bars, w.train_start, w.test_end), combos[best])
        oos, oos_returns = _out_of_sample(run, w.test_start)
        oos_parts.append(oos_returns)
        windows.append(WindowResult(
            w.index, str(w.train_start), str(w.train_end), str(w.test_start), str(w.test_end),
            int(timeline[(timeline >= w.train_start) & (timeline < w.train_end)].size), int(oos_returns.size),
            combos[best], _clean(scores[best]), _clean(oos.metrics)))
    if not windows:
        raise BacktestError("no walk-forward window had training bars")
    stitched = pd.concat(oos_parts)
    equity = capital * (1.0 + stitched).cumprod()
    r = stitched.to_numpy(float)
    sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    peak = np.maximum.accumulate(equity.to_numpy(float))
    is_sh = [w.is_metrics.get("sharpe") or 0.0 for w in windows]
    oos_sh = [w.oos_metrics.get("sharpe") or 0.0 for w in windows]
    is_mean, oos_mean = float(np.mean(is_sh)), float(np.mean(oos_sh))
    summary = {
        "windows": len(windows),
        "combinations": len(combos),
        "is_mean_sharpe": is_mean,
        "oos_mean_sharpe": oos_mean,
        # the share of in-sample performance kept out of sample; meaningless when in-sample Sharpe is ≤ 0
        "efficiency": oos_mean / is_mean if is_mean > 0 else None,
        "oos_total_return": float(equity.iloc[-1] / capital - 1.0),
        "oos_sharpe": float(r.mean() / sd * math.sqrt(periods_per_year(stitched.index))) if sd > 0 else 0.0,
        "oos_max_drawdown": float(-(equity.to_numpy(float) / peak - 1.0).min()),
        "oos_trades": int(sum(w.oos_metrics.get("trade_count") or 0 for w in windows)),
        "oos_positive_windows": int(sum((w.oos_metrics.get("total_return") or 0.0) > 0 for w in windows)),
        "objective": objective,
    }
    pbo = None
    if len(combos) >= 2:
        cols = list(map_fn(partial(_returns_only, spec, bars), combos))
        matrix = pd.concat(cols, axis=1).fillna(0.0).to_numpy(float)
        blocks = min(pbo_blocks, (matrix.shape[0] // 4) // 2 * 2)  # ≥ 2 bars per half-block
        if blocks >= 2:
            pbo = pbo_cscv(matrix, blocks)
    summary["pbo"] = pbo.pbo if pbo else None
    settings = {"train_bars": train_bars, "train_days": train_days, "test_bars": test_bars, "test_days": test_days,
                "step": step, "anchored": anchored, "costs": asdict(costs), "capital": capital, "quantity": quantity,
                "mode": mode, "objective": objective}
    return WalkForwardResult(windows, summary, equity, pbo, len(combos), settings)


# --------------------------------------------------------------------------- PBO


def pbo_cscv(returns: np.ndarray | pd.DataFrame, blocks: int = 16) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation over a T × N matrix of per-period returns
    (rows = periods in time order, columns = configurations); performance is the per-period Sharpe ratio.
    `blocks` (S, even) contiguous blocks give C(S, S/2) in-/out-of-sample splits; ties in the out-of-sample
    ranking get their average rank."""
    from scipy.stats import rankdata

    m = np.nan_to_num(np.asarray(returns, float))
    if m.ndim != 2 or m.shape[1] < 2:
        raise BacktestError("PBO needs a T x N matrix with at least 2 configurations")
    t, n = m.shape
    if blocks < 2 or blocks % 2:
        raise BacktestError(f"PBO blocks must be even and >= 2, got {blocks}")
    if t < 2 * blocks:
        raise BacktestError(f"PBO needs at least {2 * blocks} periods for {blocks} blocks, got {t}")
    parts = np.array_split(np.arange(t), blocks)
    count = np.array([len(p) for p in parts], float)
    sums = np.stack([m[p].sum(axis=0) for p in parts])  # S × N: each block's sums are reused by every split
    squares = np.stack([(m[p] ** 2).sum(axis=0) for p in parts])
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    mask = np.zeros((len(combos), blocks))
    mask[np.arange(len(combos))[:, None], combos] = 1.0

    def sharpe(sel: np.ndarray) -> np.ndarray:
        k = (sel @ count)[:, None]
        mean = (sel @ sums) / k
        var = np.maximum((sel @ squares) - k * mean**2, 0.0) / (k - 1)
        sd = np.sqrt(var)
        return np.where(sd > 1e-15, mean / np.where(sd > 1e-15, sd, 1.0), 0.0)

    in_sample, out_sample = sharpe(mask), sharpe(1.0 - mask)
    best = in_sample.argmax(axis=1)
    rows = np.arange(len(combos))
    rank = rankdata(out_sample, axis=1)[rows, best]
    omega = rank / (n + 1)
    logits = np.log(omega / (1 - omega))
    pbo = float((logits <= 0).mean())
    loss = float((out_sample[rows, best] < 0).mean())
    meaning = (f"{pbo:.0%} of {len(combos)} splits: the in-sample best was at or below the out-of-sample median"
               + (" — likely overfit" if pbo > 0.5 else " — selection holds up out of sample" if pbo < 0.2
                  else " — selection only partly holds up"))
    return PBOResult(pbo, blocks, len(combos), n, float(np.median(logits)), loss, meaning)


# --------------------------------------------------------------------------- persistence


def save_walkforward(store: DuckStore, result: WalkForwardResult, *, strategy: str, class_name: str,
                     conids: list[int], bar_size: str, grid: dict[str, list[Any]], run_id: str | None = None,
                     data: dict[str, Any] | None = None) -> str:
    """Persist a walk-forward into walkforward_runs; returns its id (8 hex chars). `data`: the bars'
    `trader.simulation.coverage.data_report` (provenance and coverage are stored with it)."""
    wf_id = uuid.uuid4().hex[:8]
    store.execute(
        "INSERT INTO walkforward_runs (id, created_at, strategy, class_name, conids, bar_size, grid, settings, "
        "windows, summary, pbo, run_id, provenance, coverage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [wf_id, datetime.now(UTC), strategy, class_name, json.dumps(conids), bar_size,
         json.dumps(grid, default=str), json.dumps(result.settings, default=str),
         json.dumps([asdict(w) for w in result.windows], default=str), json.dumps(result.summary, default=str),
         json.dumps(asdict(result.pbo)) if result.pbo else None, run_id, (data or {}).get("provenance"),
         json.dumps((data or {}).get("coverage") or [])])
    return wf_id


def get_walkforward(store: DuckStore, wf_id: str) -> dict[str, Any]:
    """One stored walk-forward (JSON columns decoded); KeyError when unknown."""
    df = store.fetch_df("SELECT * FROM walkforward_runs WHERE id = ?", [wf_id])
    if df.empty:
        from trader.errors import NotFound

        raise NotFound(f"no walk-forward run {wf_id!r}")
    r = df.to_dict("records")[0]
    for k in ("conids", "grid", "settings", "windows", "summary", "pbo"):
        r[k] = json.loads(r[k]) if isinstance(r[k], str) else None  # a NULL comes back as NaN
    r["run_id"] = r["run_id"] if isinstance(r["run_id"], str) else None
    r["created_at"] = str(r["created_at"])
    r["provenance"] = r.get("provenance") if isinstance(r.get("provenance"), str) else "unknown"
    r["coverage"] = json.loads(r["coverage"]) if isinstance(r.get("coverage"), str) else []
    return r
