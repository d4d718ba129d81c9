"""Backtester: signals decided on bar t's close are filled at bar t+1's open, never t's close.

Two dispatch modes produce the same target-position series and then share one fill loop:
- vectorized: `strategy.signals(df)` returns +1/-1/0 (NaN = hold) for every bar at once;
- bar-by-bar: `strategy.on_prices(view)` is called per bar with a `BarView` — numpy slices over
  preallocated arrays (no DataFrame is rebuilt per bar), including the indicators of the strategy's optional
  `precompute(bars)`, computed once and sliced to the current bar like the bars.
"""
from __future__ import annotations

import math
import os
import sys
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trader.errors import BacktestError
from trader.strategy.api import Signal, Strategy
from trader.strategy.exits import apply_time_exits, signal_rule
from trader.strategy.view import BarView

COLUMNS = ("open", "high", "low", "close", "volume", "vwap")
_COLUMN_INDEX = pd.Index(COLUMNS, dtype=object)


@dataclass(frozen=True, slots=True)
class Costs:
    """Trading costs applied on every fill (both sides).

    Slippage models, added together on each fill:
    - fixed: `slippage_bps` of the price and `slippage_per_share`;
    - spread: half of `spread_bps` (the quoted bid-ask spread) — a market order crosses half the spread;
    - square-root impact: `impact_coefficient` × σ × sqrt(Q / V), σ the standard deviation of bar returns and V
      the mean bar volume over the `impact_window` bars before the fill (the square-root law; per-bar σ and
      volume give the same figure as daily ones, since σ grows with sqrt(time) and volume with time).
    """

    commission_bps: float = 0.0
    commission_per_share: float = 0.0
    slippage_bps: float = 0.0
    slippage_per_share: float = 0.0
    spread_bps: float = 0.0
    impact_coefficient: float = 0.0
    impact_window: int = 20

    def __post_init__(self) -> None:
        # A NaN or negative cost silently turns every result into NaN or a gift: refuse it, naming the parameter.
        if not isinstance(self.impact_window, int) or isinstance(self.impact_window, bool) or \
                not 2 <= self.impact_window <= 10_000:
            raise BacktestError(f"impact_window (--impact-window) must be a whole number from 2 to 10000, got "
                                f"{self.impact_window!r}")
        for name, most in (("commission_bps", 10_000.0), ("commission_per_share", 10_000.0),
                           ("slippage_bps", 10_000.0), ("slippage_per_share", 10_000.0),
                           ("spread_bps", 10_000.0), ("impact_coefficient", 100.0)):
            value = getattr(self, name)
            if not _finite_in(value, 0.0, most):
                raise BacktestError(f"{name} (--{name.replace('_', '-')}) must be a finite number from 0 to "
                                    f"{most:g}, got {value!r}")


MAX_CAPITAL = 1e12


def _finite_in(value: object, low: float, high: float, *, low_open: bool = False) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return (value > low if low_open else value >= low) and value <= high


def check_backtest_params(*, capital: float, quantity: float | None = None, fraction: float = 1.0) -> None:
    """Refuse a run that cannot mean anything, naming the parameter: capital finite in (0, 1e12], a fixed
    quantity finite and positive, the sizing fraction finite in (0, 10]. Raises :class:`BacktestError`."""
    if not _finite_in(capital, 0.0, MAX_CAPITAL, low_open=True):
        raise BacktestError(f"capital (--capital) must be a finite number above 0 and at most {MAX_CAPITAL:g}, "
                            f"got {capital!r}")
    if quantity is not None and not _finite_in(quantity, 0.0, 1e9, low_open=True):
        raise BacktestError(f"quantity (--quantity) must be a finite number above 0 and at most 1e9, got {quantity!r}")
    if not _finite_in(fraction, 0.0, 10.0, low_open=True):
        raise BacktestError(f"fraction must be a finite number above 0 and at most 10, got {fraction!r}")


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip (entry fill to exit fill) on one conId."""

    con_id: int
    side: int  # +1 long, -1 short
    quantity: float
    entry_time: pd.Timestamp
    entry_price: float
    exit_time: pd.Timestamp
    exit_price: float
    commission: float
    pnl: float
    return_pct: float


class BacktestResult:
    """Equity curve (marked at each bar's close), positions and trades of one run. `trades` may be handed over
    as the fill loop's rows (`trade_rows`: one conId's, or a list of several conIds') and is then built on first
    access: a million-bar run (or a hundred conIds) makes tens of thousands of round trips whose `Trade`s and
    timestamps cost more than the backtest."""

    __slots__ = ("equity", "_trades", "_trade_rows", "exposure", "turnover", "initial_capital", "mode", "metrics")

    def __init__(self, equity: pd.Series, trades: list[Trade] | None, exposure: pd.Series, turnover: float,
                 initial_capital: float, mode: str, metrics: dict[str, float] | None = None, *,
                 trade_rows: tuple[int, pd.DatetimeIndex, np.ndarray] | list[tuple[int, pd.DatetimeIndex, np.ndarray]]
                 | None = None) -> None:
        self.equity = equity
        self._trades = trades
        parts = [trade_rows] if isinstance(trade_rows, tuple) else trade_rows
        self._trade_rows = parts if trades is None else None  # [(conId, bar timestamps, TRADE_ROW rows), …]
        self.exposure = exposure  # fraction of bars with a position, per bar (0/1 summed over conIds)
        self.turnover = turnover  # traded notional / average equity
        self.initial_capital = initial_capital
        self.mode = mode
        self.metrics = metrics if metrics is not None else {}

    @property
    def trades(self) -> list[Trade]:
        """Round trips, by entry time then conId."""
        if self._trades is None:
            parts = self._trade_rows or []
            built = [t for part in parts for t in _trades_from_rows(*part)]
            self._trades = built if len(parts) < 2 else [built[i] for i in _entry_order(parts)]
            self._trade_rows = None
        return self._trades

    @trades.setter
    def trades(self, value: list[Trade]) -> None:
        self._trades, self._trade_rows = value, None

    def trade_table(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The round trips while they are still rows: (conId of each, `TRADE_ROW` rows; entry/exit bars number
        each conId's own bars), in `trades` order; None once `trades` has been built."""
        if self._trades is not None:
            return None
        parts = self._trade_rows or []
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty((0, len(TRADE_ROW)))
        con = np.concatenate([np.full(len(rows), c, dtype=np.int64) for c, _, rows in parts])
        rows = np.concatenate([rows for _, _, rows in parts])
        if len(parts) > 1:
            order = _entry_order(parts)
            return con[order], rows[order]
        return con, rows

    def trade_column(self, name: str) -> np.ndarray:
        """One numeric `Trade` field of every round trip in `trades` order (e.g. "pnl"), without building them."""
        if self._trades is None and self._trade_rows is not None:
            k = TRADE_ROW.index(name)
            if len(self._trade_rows) == 1:
                return self._trade_rows[0][2][:, k].copy()
            return np.concatenate([rows[:, k] for _, _, rows in self._trade_rows])[_entry_order(self._trade_rows)]
        return np.array([getattr(t, name) for t in self.trades], dtype=float)

    def __repr__(self) -> str:
        return (f"BacktestResult(mode={self.mode!r}, bars={len(self.equity)}, trades={len(self.trades)}, "
                f"final_equity={float(self.equity.iloc[-1]) if len(self.equity) else None!r})")


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    missing = {"open", "high", "low", "close"} - set(df.columns)
    if missing:
        raise BacktestError(f"bars lack columns {sorted(missing)}")
    if len(df) < 2:
        raise BacktestError("need at least 2 bars")
    if tuple(df.columns) == COLUMNS and df.index.is_monotonic_increasing and \
            all(dt == np.float64 for dt in df.dtypes):
        return df.copy()  # already prepared (sweeps prepare once per worker); a copy keeps strategies apart
    out = df if df.index.is_monotonic_increasing else df.sort_index()
    # Column by column in numpy (the same values as assign + astype, a third of the time per conId).
    cols = {k: out[k].to_numpy() for k in ("open", "high", "low", "close")}
    cols["volume"] = out["volume"].to_numpy() if "volume" in out else np.zeros(len(out))
    cols["vwap"] = out["vwap"].to_numpy() if "vwap" in out else (cols["high"] + cols["low"] + cols["close"]) / 3.0
    # One float block (a row per column, each contiguous) under a shared column index: no consolidation, and the
    # column lookup table is built once per process instead of once per frame.
    block = np.stack([np.asarray(cols[k], dtype=float) for k in COLUMNS])
    return pd.DataFrame(block.T, index=out.index, columns=_COLUMN_INDEX, copy=False)


def target_series(strategy: Strategy, df: pd.DataFrame, mode: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """Target direction per bar (+1/-1/0, NaN = hold) and optional per-bar size hints (NaN = default)."""
    n = len(df)
    sizes = np.full(n, np.nan)
    if mode == "auto":
        mode = "vectorized" if strategy.vectorized else "bar-by-bar"
    if mode == "vectorized":
        sig = strategy.signals(df)  # type: ignore[attr-defined]
        tgt = np.asarray(pd.Series(sig).reindex(df.index) if isinstance(sig, pd.Series) else sig, dtype=float)
        if tgt.shape != (n,):
            raise BacktestError(f"signals() returned shape {tgt.shape}, expected ({n},)")
        return apply_time_exits(strategy, tgt, df.index), sizes, mode
    # The bar columns as rows of one array: a prepared frame's own block (no copy), not a column lookup each.
    block = df.to_numpy(dtype=float) if tuple(df.columns) == COLUMNS else df[list(COLUMNS)].to_numpy(dtype=float)
    cols = dict(zip(COLUMNS, np.ascontiguousarray(block.T), strict=True))
    cols.update(precompute_columns(strategy, df))
    view = BarView(cols, df.index)
    on_prices = strategy.on_prices
    # The loop does nothing but call the strategy; the signals are decoded afterwards, once per distinct object
    # (strategies often return the same few Signal constants bar after bar).
    signals: list[Signal | None] = [on_prices(view) for view._n in range(1, n + 1)]
    tgt = np.full(n, np.nan)
    rules: dict[int, Any] = {}  # bar -> the time-exit rule of the signal returned there (trader.strategy.exits)
    ids = np.fromiter(map(id, signals), dtype=np.uintp, count=n)  # the list keeps them alive: ids are unique
    distinct, first = np.unique(ids, return_index=True)
    if len(distinct) <= 64:
        for key, k in zip(distinct.tolist(), first.tolist(), strict=True):
            if signals[k] is not None:
                _decode(signals[k], ids == key, tgt, sizes, rules)
    else:  # a new object per bar: decode bar by bar
        for i, s in enumerate(signals):
            if s is not None:
                _decode(s, i, tgt, sizes, rules)
    return apply_time_exits(strategy, tgt, df.index, rules), sizes, "bar-by-bar"


def _size_hint(s: Signal) -> float:
    """A signal's size hint: shares, or a negative number encoding a fraction of equity; NaN = the default."""
    return s.quantity if s.quantity is not None else (-s.fraction if s.fraction is not None else math.nan)


def _decode(s: Signal, bars: np.ndarray | int, tgt: np.ndarray, sizes: np.ndarray, rules: dict[int, Any]) -> None:
    """Write one Signal's target, size hint and time-exit rule at the bars (a mask, or one bar) it was returned."""
    tgt[bars] = s.target
    size = _size_hint(s)
    if size == size:
        sizes[bars] = size
    rule = signal_rule(s)
    if rule is not None:
        rules.update(dict.fromkeys(np.flatnonzero(bars).tolist() if isinstance(bars, np.ndarray) else [bars], rule))


def precompute_columns(strategy: Strategy, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The strategy's `precompute(bars)` indicators (computed once over the whole series) as float arrays, one
    per name, each as long as the bars; {} when the strategy has no `precompute`. The bar callback sees them
    through its `BarView` sliced to the current bar like the bar columns, so a value after the current bar is
    never visible; an indicator that itself looks ahead (a centred window, `shift(-1)`) is what
    `check_lookahead` catches, since it reruns `precompute` on truncated histories."""
    if not callable(getattr(type(strategy), "precompute", None)):
        return {}
    raw = strategy.precompute(df)  # type: ignore[attr-defined]
    if not isinstance(raw, dict):
        raise BacktestError(f"precompute() must return a dict of name -> array, got {type(raw).__name__}")
    out = {}
    for name, values in raw.items():
        if not isinstance(name, str) or name in COLUMNS:
            raise BacktestError(f"precompute() name {name!r} must be a str other than the bar columns {COLUMNS}")
        if isinstance(values, pd.Series):  # aligned on the bars (no reindex when it already has their index)
            values = values.to_numpy(float) if values.index is df.index else values.reindex(df.index).to_numpy(float)
        arr = np.ascontiguousarray(values, dtype=float)
        if arr.shape != (len(df),):
            raise BacktestError(f"precompute() {name!r} has shape {arr.shape}, expected ({len(df)},)")
        out[name] = arr
    return out


def is_panel(strategy: Strategy) -> bool:
    """True when the strategy implements `panel_signals(frames)`: it decides for every conId at once from all
    their bars (pairs, cross-sectional ranking), instead of one conId at a time."""
    return callable(getattr(type(strategy), "panel_signals", None))


def panel_targets(strategy: Strategy, bars: dict[int, pd.DataFrame], mode: str = "auto"
                  ) -> dict[int, np.ndarray] | None:
    """Per conId, the targets of a panel strategy (None for other strategies or another mode).
    `panel_signals` gets every conId's prepared bars and returns a Series (or array) per conId, each aligned
    to that conId's own bars; a missing conId holds no position."""
    if mode not in ("auto", "panel") or not is_panel(strategy):
        return None
    frames = {c: _prepare(raw) for c, raw in bars.items()}
    raw_out = strategy.panel_signals(frames)  # type: ignore[attr-defined]
    out = {}
    for c, df in frames.items():
        sig = raw_out.get(c) if isinstance(raw_out, dict) else None
        if sig is None:
            out[c] = np.zeros(len(df))
            continue
        tgt = np.asarray(pd.Series(sig).reindex(df.index) if isinstance(sig, pd.Series) else sig, dtype=float)
        if tgt.shape != (len(df),):
            raise BacktestError(f"panel_signals() returned shape {tgt.shape} for conId {c}, expected ({len(df)},)")
        out[c] = apply_time_exits(strategy, tgt, df.index)
    return out


def simulate(df: pd.DataFrame, target: np.ndarray, *, con_id: int = 0, capital: float = 100_000.0,
             quantity: float | None = None, fraction: float = 1.0, costs: Costs = Costs(),
             sizes: np.ndarray | None = None, sizer: Callable[[int, float, float], float] | None = None,
             ) -> tuple[np.ndarray, list[Trade], np.ndarray, float]:
    """`simulate_rows` with the round trips as `Trade`s: (equity at each close, trades, position per bar, traded
    notional)."""
    equity, rows, positions, notional = simulate_rows(df, target, capital=capital, quantity=quantity,
                                                      fraction=fraction, costs=costs, sizes=sizes, sizer=sizer)
    return equity, _trades_from_rows(con_id, df.index, rows), positions, notional


def simulate_rows(df: pd.DataFrame, target: np.ndarray, *, capital: float = 100_000.0,
                  quantity: float | None = None, fraction: float = 1.0, costs: Costs = Costs(),
                  sizes: np.ndarray | None = None, sizer: Callable[[int, float, float], float] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Fill loop for one conId. A target decided on bar i is filled at open[i+1]. Quantity is `quantity`
    shares when given, otherwise floor(fraction * equity / fill price). Returns (equity at each close,
    round trips as rows of `TRADE_ROW` fields, position per bar, traded notional). Without a `sizer` callback the
    loop runs compiled when that pays (`_use_compiled`), with the same results bit for bit.

    Only bars where the wanted direction differs from the held one are visited in Python; between them
    cash and position are constant, so equity is `cash + pos * close` filled with numpy (the same float
    operations as a per-bar loop, hence identical results)."""
    o = df["open"].to_numpy(float)
    c = df["close"].to_numpy(float)
    n = len(o)
    tgt = np.asarray(target, dtype=float)
    if sizer is None and _use_compiled(None):
        return _simulate_compiled(o, c, tgt, sizes, capital=capital, quantity=quantity, fraction=fraction,
                                  costs=costs, impact_df=df)
    # want[i] / pending[i]: direction and size hint of the last non-NaN target strictly before bar i.
    last = np.where(~np.isnan(tgt), np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    prev = np.concatenate(([-1], last[:-1]))
    has = prev >= 0
    src = np.where(has, prev, 0)
    want_at = np.where(has, np.sign(tgt[src]), 0.0)
    pending_at = np.where(has, sizes[src], np.nan) if sizes is not None else np.full(n, np.nan)
    changes = np.flatnonzero(want_at[1:] != want_at[:-1]) + 1
    base_slip = costs.slippage_bps / 1e4 + costs.spread_bps / 2e4  # fixed bps + half the quoted spread
    impact = impact_inputs(df, costs.impact_coefficient, costs.impact_window) if costs.impact_coefficient else None
    if sizer is None and _use_compiled(len(changes)):
        return _simulate_compiled(o, c, tgt, sizes, capital=capital, quantity=quantity, fraction=fraction,
                                  costs=costs, impact_df=df)
    cash, pos = float(capital), 0.0
    starts, cashes, held = [0], [cash], [pos]  # the (cash, position) each fill event leaves, from its bar on
    closed: list[tuple] = []  # round trips with bar numbers; timestamps are boxed in bulk at the end
    notional = 0.0
    entry: tuple[int, float, float, float] | None = None  # (bar, price, qty, commission)
    chg = changes.tolist()  # bisect on a list: a numpy searchsorted call per event cost more than the event
    i = 1
    while i < n:
        cur = 0 if pos == 0 else (1 if pos > 0 else -1)
        if want_at[i] == cur:  # in sync: nothing happens until the wanted direction changes
            k = bisect_right(chg, i)
            if k == len(chg):
                break
            i = chg[k]
        want = float(want_at[i])
        pending_size = float(pending_at[i])
        px = float(o[i])  # Python float arithmetic: the same IEEE doubles as numpy scalars, several times faster
        if pos != 0:  # close the open position first
            side = 1 if pos > 0 else -1
            q = abs(pos)
            fill = px * (1 - side * (base_slip + _impact(impact, i, q))) - side * costs.slippage_per_share
            comm = q * fill * costs.commission_bps / 1e4 + q * costs.commission_per_share
            cash += pos * fill - comm
            notional += q * fill
            assert entry is not None
            e_bar, e_px, e_q, e_comm = entry
            pnl = side * q * (fill - e_px) - comm - e_comm
            closed.append((side, q, e_bar, e_px, i, fill, comm + e_comm, pnl, pnl / (q * e_px) if e_px else 0.0))
            pos, entry = 0.0, None
        if want != 0:
            side = int(want)
            fill = px * (1 + side * base_slip) + side * costs.slippage_per_share
            if not math.isnan(pending_size) and pending_size > 0:
                q = float(pending_size)
            elif sizer is not None:  # the live runtime's sizing (trader.simulation.live_sizing)
                q = float(sizer(i, fill, cash))
            elif quantity is not None:
                q = float(quantity)
            else:
                frac = -pending_size if not math.isnan(pending_size) else fraction
                per_share_cost = fill * (1 + costs.commission_bps / 1e4) + costs.commission_per_share
                q = float(math.floor(frac * cash / per_share_cost)) if cash > 0 else 0.0
            if q > 0 and impact is not None:  # the impact depends on the size: price it, then fit the cash again
                fill = px * (1 + side * (base_slip + _impact(impact, i, q))) + side * costs.slippage_per_share
                if quantity is None and sizer is None and (math.isnan(pending_size) or pending_size <= 0):
                    per_share_cost = fill * (1 + costs.commission_bps / 1e4) + costs.commission_per_share
                    frac = -pending_size if not math.isnan(pending_size) else fraction
                    q = min(q, float(math.floor(frac * cash / per_share_cost)))
            if q > 0:
                comm = q * fill * costs.commission_bps / 1e4 + q * costs.commission_per_share
                pos = side * q
                cash -= pos * fill + comm
                notional += q * fill
                entry = (i, fill, q, comm)
        starts.append(i)
        cashes.append(cash)
        held.append(pos)
        i += 1
    # Marked at each close in one pass: cash + pos * close per bar, the same float operations as per segment.
    lengths = np.diff(np.append(starts, n))
    positions = np.repeat(held, lengths)
    equity = np.repeat(cashes, lengths) + positions * c
    return equity, np.array(closed, dtype=float).reshape(len(closed), len(TRADE_ROW)), positions, notional


# Importing numba and loading the cached loop costs a fresh process ~0.6-0.8 s; the Python loop ~3 µs a fill event.
COMPILED_MIN_EVENTS = 100_000
_python_events = 0  # fill events this process has run through the Python loop so far
_numba_missing = False


def _use_compiled(events: int | None) -> bool:
    """The compiled fill loop when numba is already loaded, or the run — or this process so far, counting the
    runs before it (a sweep worker, a research session) — has enough fill events to repay loading it (`events`
    None = not counted yet); the Python loop otherwise, and when numba is not installed. Both give the same
    results bit for bit, so switching mid-sweep changes nothing. `MMR_FILL_LOOP=python|compiled` forces one."""
    global _python_events, _numba_missing
    forced = os.environ.get("MMR_FILL_LOOP", "")
    if forced == "python" or _numba_missing:
        return False
    if forced != "compiled" and "numba" not in sys.modules:
        if events is None:
            return False
        _python_events += events
        if events < COMPILED_MIN_EVENTS and _python_events < COMPILED_MIN_EVENTS:
            return False
    try:
        import numba  # noqa: F401
    except ImportError:
        _numba_missing = True
        return False
    return True


def _simulate_compiled(o: np.ndarray, c: np.ndarray, tgt: np.ndarray, sizes: np.ndarray | None, *,
                       capital: float, quantity: float | None, fraction: float, costs: Costs,
                       impact_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """`simulate_rows` through the compiled fill loop (trader.simulation.fill_kernel): the same results, bit for
    bit."""
    from trader.simulation.fill_kernel import fill_loop

    impact = impact_inputs(impact_df, costs.impact_coefficient, costs.impact_window) \
        if costs.impact_coefficient else (np.empty(0), np.empty(0))
    def arg(a: np.ndarray) -> np.ndarray:  # one array type (C order, writeable) so the disk cache always hits
        return np.require(a, dtype=np.float64, requirements=["C", "W"])

    equity, positions, rows, notional = fill_loop(
        arg(o), arg(c), arg(tgt), arg(sizes) if sizes is not None else np.empty(0), sizes is not None,
        float(capital), math.nan if quantity is None else float(quantity), float(fraction),
        costs.slippage_bps / 1e4 + costs.spread_bps / 2e4, float(costs.slippage_per_share),
        float(costs.commission_bps), float(costs.commission_per_share), arg(impact[0]), arg(impact[1]),
        bool(costs.impact_coefficient))
    return equity, rows, positions, float(notional)


TRADE_ROW = ("side", "quantity", "entry_bar", "entry_price", "exit_bar", "exit_price", "commission", "pnl",
             "return_pct")


def _entry_order(parts: list[tuple[int, pd.DatetimeIndex, np.ndarray]]) -> np.ndarray:
    """Positions of the concatenated parts' round trips sorted by (entry time, conId), as `trades` lists them
    (a conId never enters twice on one bar, so the order is total)."""
    entry = np.concatenate([idx.as_unit("ns").asi8[rows[:, 2].astype(np.int64)] for _, idx, rows in parts])
    con = np.concatenate([np.full(len(rows), c, dtype=np.int64) for c, _, rows in parts])
    return np.lexsort((con, entry))


def _trades_from_rows(con_id: int, idx: pd.DatetimeIndex, rows: np.ndarray) -> list[Trade]:
    """`Trade`s from the fill loop's rows (`TRADE_ROW`), timestamps boxed in bulk."""
    if not len(rows):
        return []
    entries = list(idx[rows[:, 2].astype(np.int64)])
    exits = list(idx[rows[:, 4].astype(np.int64)])
    sides = rows[:, 0].astype(np.int64).tolist()
    q, e_px, x_px, comm, pnl, ret = (rows[:, k].tolist() for k in (1, 3, 5, 6, 7, 8))
    return [Trade(con_id, sides[k], q[k], entries[k], e_px[k], exits[k], x_px[k], comm[k], pnl[k], ret[k])
            for k in range(len(rows))]


def impact_inputs(df: pd.DataFrame, coefficient: float, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bar i, `coefficient` × σ and the mean volume V over the `window` bars before i (i excluded: a
    fill at bar i's open knows only the bars before it). σ is the sample standard deviation of close-to-close
    returns. NaN until enough bars exist (no impact is charged then)."""
    c = df["close"].to_numpy(float)
    v = df["volume"].to_numpy(float) if "volume" in df else np.zeros(len(c))
    rets = pd.Series(np.concatenate(([np.nan], np.diff(c) / c[:-1])))
    sigma = rets.rolling(window, min_periods=window).std(ddof=1).shift(1).to_numpy()
    mean_vol = pd.Series(v).rolling(window, min_periods=window).mean().shift(1).to_numpy()
    return coefficient * sigma, mean_vol


def _impact(impact: tuple[np.ndarray, np.ndarray] | None, i: int, q: float) -> float:
    """Square-root impact of `q` shares at bar i as a fraction of the price (0 without data or volume)."""
    if impact is None:
        return 0.0
    k_sigma, vol = float(impact[0][i]), float(impact[1][i])
    if not (math.isfinite(k_sigma) and math.isfinite(vol)) or vol <= 0:
        return 0.0
    return k_sigma * math.sqrt(q / vol)


def run_backtest(strategy: Strategy, bars: dict[int, pd.DataFrame] | pd.DataFrame, *,
                 capital: float = 100_000.0, quantity: float | None = None, fraction: float = 1.0,
                 costs: Costs = Costs(), mode: str = "auto",
                 sizer_factory: Callable[[pd.DataFrame], Callable[[int, float, float], float]] | None = None,
                 targets: dict[int, np.ndarray] | None = None) -> BacktestResult:
    """Backtest one strategy over one or many conIds (capital split equally; equity summed on the
    union of timestamps, forward-filled). Metrics are computed and attached. `sizer_factory(bars)` gives a
    per-conId sizer (bar, fill price, equity) -> shares for entries without a Signal quantity (the live
    runtime's sizing: trader.simulation.live_sizing). `targets`: per conId, the vectorized targets already
    decided (time exits applied) for these prepared bars, e.g. by a sweep's one pass over its grid
    (`sweep_runner`); the strategy is then not called."""
    from trader.simulation.metrics import compute_metrics

    check_backtest_params(capital=capital, quantity=quantity, fraction=fraction)
    if not isinstance(costs, Costs):
        raise BacktestError(f"costs must be a Costs, got {type(costs).__name__}")
    if isinstance(bars, pd.DataFrame):
        bars = {0: bars}
    if not bars:
        raise BacktestError("no bars to backtest")
    per = capital / len(bars)
    curves: list[pd.Series] = []
    exposures: list[pd.Series] = []
    trades: list[tuple[int, pd.DatetimeIndex, np.ndarray]] = []
    notional, used_mode = 0.0, mode
    panel = panel_targets(strategy, bars, mode) if targets is None else None
    if targets is None and panel is None and sizer_factory is None:
        from trader.simulation.wide import run_wide, wide_targets

        wide = wide_targets(strategy, bars, mode)  # all conIds in one pass (`signals_wide`), when it can
        if wide is not None:
            return run_wide(*wide, capital=capital, quantity=quantity, fraction=fraction, costs=costs)
    for con_id, raw in bars.items():
        df = _prepare(raw) if targets is None else raw  # prepared by the caller; no strategy sees it here
        if targets is not None:
            tgt, sizes, used_mode = targets[con_id], np.full(len(df), np.nan), "vectorized"
        elif panel is not None:
            tgt, sizes, used_mode = panel[con_id], np.full(len(df), np.nan), "panel"
        else:
            tgt, sizes, used_mode = target_series(strategy, df, mode)
        eq, rows, posn, notl = simulate_rows(df, tgt, capital=per, quantity=quantity, fraction=fraction,
                                             costs=costs, sizes=sizes,
                                             sizer=sizer_factory(df) if sizer_factory is not None else None)
        curves.append(pd.Series(eq, index=df.index))
        exposures.append(pd.Series((posn != 0).astype(float), index=df.index))
        trades.append((con_id, df.index, rows))
        notional += notl
    equity = pd.concat(curves, axis=1).ffill().bfill().sum(axis=1) if len(curves) > 1 else curves[0]
    exposure = pd.concat(exposures, axis=1).fillna(0).mean(axis=1) if len(exposures) > 1 else exposures[0]
    # Trades are built when first asked for, merged in (entry time, conId) order.
    result = BacktestResult(equity=equity, trades=None, exposure=exposure,
                            turnover=notional / max(float(equity.mean()), 1e-12), initial_capital=capital,
                            mode=used_mode, trade_rows=trades)
    result.metrics = compute_metrics(result)
    return result


def params_from_cli(pairs: list[str] | None, json_text: str | None) -> dict[str, Any]:
    """Merge `--param K=V` pairs and a `--params JSON` object into one dict (pairs win)."""
    import json

    out: dict[str, Any] = json.loads(json_text) if json_text else {}
    for p in pairs or []:
        if "=" not in p:
            raise BacktestError(f"--param expects K=V, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out
