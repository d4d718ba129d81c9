"""The fill loop over every column of a 2-D target matrix at once, in numpy (no compilation, no start-up cost).

A sweep chunk's combos share one conId's bars and differ only in their targets (`signals_grid`), so instead of
running the Python fill loop once per combo, `simulate_grid` steps through fill *events* by event number: step k
handles the k-th direction change of every column still running, with numpy across those columns, carrying each
column's cash, position and open entry. Between events a column's cash and position are constant, so its equity
is `cash + pos * close` filled from a per-bar index of its last event. `grid_metrics` and `grid_moments` then
compute `compute_metrics` and the ranking moments over the equity matrix, one row per combo.

The arithmetic is `backtester.simulate_rows`' (commission, fixed slippage and half the spread, whole-share all-in
sizing or a fixed quantity, fills at the next bar's open) in the same order on the same IEEE doubles, so the
results are bit-identical to the per-run path (tests/simulation/test_fill_grid.py). Square-root impact, size
hints and sizer callbacks are not covered: callers use the per-run path for those (`grid_supported`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trader.simulation.backtester import Costs
from trader.simulation.metrics import annualization, trade_stats


@dataclass(frozen=True, slots=True)
class GridFills:
    """What `simulate_grid` returns, one row (or entry) per column of the targets."""

    equity: np.ndarray  # (columns, bars): equity at each close, each combo's curve contiguous
    exposure: np.ndarray  # (columns,): fraction of bars with a position (`time_in_market`)
    trades: list[np.ndarray]  # per column: round trips as rows of backtester.TRADE_ROW fields
    notional: np.ndarray  # (columns,): traded notional
    held: np.ndarray | None = None  # (columns, bars): position after each bar's fills
    # Per column, its constant-state segments as rows (first bar, cash, position): its equity is
    # `equity_from_segments(segments[j], close)`, bit for bit (a sweep stores these instead of every bar's value).
    segments: list[np.ndarray] | None = None


def grid_supported(costs: Costs, quantity: float | None = None) -> bool:
    """True when `simulate_grid` reproduces the per-run fill loop for these settings (no square-root impact)."""
    return not costs.impact_coefficient and (quantity is None or quantity > 0)


def simulate_grid(open_: np.ndarray, close: np.ndarray, targets: np.ndarray, *, capital: float = 100_000.0,
                  quantity: float | None = None, fraction: float = 1.0, costs: Costs | None = None,
                  positions: bool = True) -> GridFills:
    """Run the fill loop of `backtester.simulate_rows` for every column of `targets` (bars × combos: +1/-1/0,
    NaN = hold) on one conId's bars (or, `open_` and `close` given as columns × bars, each column on its own
    conId's bars), all columns at once: a target decided on bar i fills at open[i+1], an open
    position is closed before the opposite one opens, quantity is `quantity` shares or
    floor(fraction × cash / all-in cost per share). Bit-identical to `simulate_rows` column by column (no size
    hints, no sizer, no impact: see `grid_supported`). `positions=False`: no `held` matrix (a sweep reads only
    the equity and the segments; one combos × bars array fewer to build)."""
    costs = costs if costs is not None else Costs()
    if costs.impact_coefficient:
        raise ValueError("simulate_grid does not model square-root impact; use backtester.simulate_rows")
    o = np.asarray(open_, dtype=float)
    c = np.asarray(close, dtype=float)
    tgt = np.ascontiguousarray(np.asarray(targets, dtype=float).T)  # combos × bars: each column's bars contiguous
    m, n = tgt.shape
    # want[j, i]: sign of column j's last non-NaN target strictly before bar i (0 before the first one), i.e. the
    # sign of bar i - 1's target, with NaN resolved over bars 0 .. n - 2 (the last bar's target is never used).
    want = np.empty((m, n))
    want[:, 0] = 0.0
    sign = want[:, 1:]  # written in place: no separate sign matrix
    np.sign(tgt[:, :-1], out=sign)
    nan = np.isnan(tgt[:, :-1])
    if nan.any():
        first = np.argmin(nan, axis=1)  # first non-NaN bar (0 for a column of NaN only)
        if np.array_equal(np.count_nonzero(nan, axis=1), np.where(nan.all(axis=1), n - 1, first)):
            sign[nan] = 0.0  # NaN only before each column's first target (indicator warm-up): nothing held yet
        else:  # NaN = hold: carry each column's last target forward
            last = np.where(nan, -1, np.arange(n - 1))
            np.maximum.accumulate(last, axis=1, out=last)
            sign[:] = np.where(last >= 0, np.take(sign, np.maximum(last, 0) + np.arange(m)[:, None] * (n - 1)),
                               0.0)
    # The bars where a column's wanted direction changes, sorted by column then bar.
    flat = np.flatnonzero(want[:, 1:] != want[:, :-1])  # flat: ~3x faster than a 2-D nonzero
    change_col, change_bar = np.divmod(flat, max(n - 1, 1))
    change_bar += 1
    args = dict(capital=float(capital), quantity=quantity, fraction=fraction, costs=costs)
    # Each bar's state is that left by the column's last event at or before it: the events sorted by (column,
    # bar), each row's initial state first, cut every row into segments of constant cash and position.
    events = _scheduled_events(o, want, change_col, change_bar, **args) if n > 1 else None
    if events is None:  # an entry that could not be sized (retried bar after bar): the general loop
        events = _looped_events(o, want, change_col, change_bar, **args)
    starts, state_cash, state_pos, tr_col, tr_rows, notional = events
    lengths = np.diff(np.append(starts, m * n))
    held = np.repeat(state_pos, lengths).reshape(m, n)
    # cash + held × close (addition commutes exactly); without `positions`, in the held array itself
    equity = held * (c if c.ndim == 2 else c[None, :]) if positions else \
        np.multiply(held, c if c.ndim == 2 else c[None, :], out=held)
    equity += np.repeat(state_cash, lengths).reshape(m, n)
    cut = np.searchsorted(starts, np.arange(m + 1) * n)
    table = np.column_stack((starts - np.repeat(np.arange(m) * n, np.diff(cut)), state_cash, state_pos))
    segments = [table[cut[j]:cut[j + 1]] for j in range(m)]
    # Bars with a position, counted per row from its segments (every row has one at least): exact integers.
    exposure = np.add.reduceat(np.where(state_pos != 0, lengths, 0), cut[:-1]) / n
    trades = _split_trades(tr_col, tr_rows, m)
    return GridFills(equity, exposure, trades, notional, held if positions else None, segments)


def _looped_events(o: np.ndarray, want: np.ndarray, change_col: np.ndarray, change_bar: np.ndarray, *,
                   capital: float, quantity: float | None, fraction: float, costs: Costs) -> tuple:
    """`simulate_grid`'s fill events in general: step k handles the k-th event of every column still running (a
    change of its wanted direction, or an entry it could not size before, retried on the next bar). Returns
    (segment starts as column × bars + bar, their cash, their position, trade columns, trade rows, notional)."""
    m, n = want.shape
    # The change bars as one sorted array of keys column × (n + 1) + bar: an in-sync column's next event is its
    # first change after the current bar (one searchsorted for all columns).
    change_keys = change_col * (n + 1) + change_bar
    stride = np.arange(m) * (n + 1)
    base_slip = costs.slippage_bps / 1e4 + costs.spread_bps / 2e4  # as simulate_rows: fixed bps + half the spread
    sps, cbps, cps = costs.slippage_per_share, costs.commission_bps, costs.commission_per_share
    comm_factor = 1 + cbps / 1e4
    cash = np.full(m, float(capital))
    pos = np.zeros(m)
    notional = np.zeros(m)
    e_bar = np.zeros(m)
    e_px = np.zeros(m)
    e_comm = np.zeros(m)
    at = np.ones(m, dtype=np.int64)  # the next bar each column looks at
    # Events in the order they happen: the state (cash, position) each leaves, and the bar it takes effect.
    ev_col: list[np.ndarray] = []
    ev_bar: list[np.ndarray] = []
    ev_cash: list[np.ndarray] = []
    ev_pos: list[np.ndarray] = []
    tr_col: list[np.ndarray] = []
    tr_rows: list[np.ndarray] = []
    act = np.arange(m) if n > 1 else np.empty(0, dtype=np.int64)
    while act.size:
        i = at[act]
        p = pos[act]
        cur = np.sign(p)
        sync = want[act, i] == cur
        if sync.any():  # nothing happens until the wanted direction changes
            k = np.searchsorted(change_keys, stride[act] + i, side="right")
            found = np.minimum(k, len(change_keys) - 1)
            upcoming = change_keys[found] - stride[act] if len(change_keys) else np.full(len(act), n)
            upcoming = np.where((k < len(change_keys)) & (upcoming <= n), upcoming, n)
            i = np.where(sync, upcoming, i)
            live = i < n
            act, i, p = act[live], i[live], p[live]
            if not act.size:
                break
        w = want[act, i]
        px = o[act, i] if o.ndim == 2 else o[i]
        cs = cash[act]
        nt = notional[act]
        shut = p != 0
        if shut.any():  # close the open position first
            k = act[shut]
            ps, pxs = p[shut], px[shut]
            side = np.where(ps > 0, 1.0, -1.0)
            q = np.abs(ps)
            fill = pxs * (1 - side * (base_slip + 0.0)) - side * sps
            comm = q * fill * cbps / 1e4 + q * cps
            cs[shut] = cs[shut] + (ps * fill - comm)
            nt[shut] = nt[shut] + q * fill
            epx, ecomm = e_px[k], e_comm[k]
            pnl = side * q * (fill - epx) - comm - ecomm
            with np.errstate(divide="ignore", invalid="ignore"):
                ret = np.where(epx != 0, pnl / (q * epx), 0.0)
            tr_col.append(k)
            tr_rows.append(np.column_stack((side, q, e_bar[k], epx, i[shut].astype(float), fill, comm + ecomm, pnl,
                                            ret)))
            p = np.where(shut, 0.0, p)
        enter = w != 0
        if enter.any():
            k = act[enter]
            side = w[enter]
            ce = cs[enter]
            fill = px[enter] * (1 + side * base_slip) + side * sps
            if quantity is not None:
                q = np.full(len(k), float(quantity))
            else:
                per_share_cost = fill * comm_factor + cps
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = np.where(ce > 0, np.floor(fraction * ce / per_share_cost), 0.0)
            go = q > 0
            if go.any():
                qg, fg, sg = q[go], fill[go], side[go]
                comm = qg * fg * cbps / 1e4 + qg * cps
                newpos = sg * qg
                ce[go] = ce[go] - (newpos * fg + comm)
                ne = nt[enter]
                ne[go] = ne[go] + qg * fg
                nt[enter] = ne
                pe = p[enter]
                pe[go] = newpos
                p[enter] = pe
                kg = k[go]
                e_bar[kg], e_px[kg], e_comm[kg] = i[enter][go], fg, comm
            cs[enter] = ce
        cash[act], pos[act], notional[act] = cs, p, nt
        ev_col.append(act)
        ev_bar.append(i)
        ev_cash.append(cs.copy())
        ev_pos.append(p.copy())
        at[act] = i + 1
        act = act[i + 1 < n]
    if ev_col:
        col = np.concatenate(ev_col)
        keys = col * n + np.concatenate(ev_bar)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.concatenate((np.arange(m) * n, keys))  # each row starts in the initial state
        state_cash = np.concatenate((np.full(m, float(capital)), np.concatenate(ev_cash)[order]))
        state_pos = np.concatenate((np.zeros(m), np.concatenate(ev_pos)[order]))
        by_start = np.argsort(starts, kind="stable")  # a row's initial state before its events
        return starts[by_start], state_cash[by_start], state_pos[by_start], tr_col, tr_rows, notional
    return np.arange(m) * n, np.full(m, float(capital)), np.zeros(m), tr_col, tr_rows, notional


def _scheduled_events(o: np.ndarray, want: np.ndarray, change_col: np.ndarray, change_bar: np.ndarray, *,
                      capital: float, quantity: float | None, fraction: float, costs: Costs) -> tuple | None:
    """`_looped_events` when every entry met can be sized (q > 0): then a column's events are exactly the bars
    where its wanted direction changes (`change_col`/`change_bar`, sorted by column and bar), known up front, so
    step k handles the k-th change of every column that has one. The columns are ordered by their number of
    changes, most first, so the columns still running at step k are a prefix of every state array: slices
    (views) instead of the loop's index arrays and a searchsorted per step (the loop's ~70 ms of a 1,000-run
    daily sweep ~45 ms). The same float operations on the same values, element by element, as the loop, and the
    same results. None as soon as an entry cannot be sized (the loop retries it bar after bar, which a schedule of
    changes does not model)."""
    m, n = want.shape
    counts = np.bincount(change_col, minlength=m)
    order = np.argsort(-counts, kind="stable")  # most changes first: the running columns are a prefix
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    counts_sorted = counts[order]
    steps = int(counts_sorted[0]) if m else 0
    kth = np.arange(len(change_col)) - np.repeat(np.cumsum(counts) - counts, counts)  # place in its column
    # Step k's bar, wanted direction and open price per column (in the sorted order); column 0 is the initial
    # state, so that a row of these matrices is the column's segments.
    bars = np.zeros((m, steps + 1), dtype=np.int64)
    bars[rank[change_col], kth + 1] = change_bar
    wanted = np.zeros((m, steps + 1))
    wanted[rank[change_col], kth + 1] = want[change_col, change_bar]
    price = o[bars] if o.ndim == 1 else o[order[:, None], bars]
    running = np.searchsorted(-counts_sorted, -np.arange(steps), side="left")  # columns with more than k changes

    base_slip = costs.slippage_bps / 1e4 + costs.spread_bps / 2e4
    sps, cbps, cps = costs.slippage_per_share, costs.commission_bps, costs.commission_per_share
    comm_factor = 1 + cbps / 1e4
    cash, pos, notional = np.full(m, capital), np.zeros(m), np.zeros(m)
    e_bar, e_px, e_comm = np.zeros(m), np.zeros(m), np.zeros(m)
    ev_cash, ev_pos = np.empty((m, steps + 1)), np.empty((m, steps + 1))
    ev_cash[:, 0], ev_pos[:, 0] = capital, 0.0
    tr_col: list[np.ndarray] = []
    tr_rows: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            r = int(running[k - 1])
            i, w, px = bars[:r, k], wanted[:r, k], price[:r, k]
            cs, p, nt = cash[:r], pos[:r], notional[:r]  # views: updated in place
            shut = p != 0
            if shut.any():  # close the open position first (computed for every lane, kept where one is open)
                every = bool(shut.all())
                side = np.where(p > 0, 1.0, -1.0)
                q = np.abs(p)
                fill = px * (1 - side * (base_slip + 0.0)) - side * sps
                comm = q * fill * cbps / 1e4 + q * cps
                new_cash = cs + (p * fill - comm)
                new_nt = nt + q * fill
                epx, ecomm = e_px[:r], e_comm[:r]
                pnl = side * q * (fill - epx) - comm - ecomm
                ret = np.where(epx != 0, pnl / (q * epx), 0.0)
                rows = np.column_stack((side, q, e_bar[:r], epx, i.astype(float), fill, comm + ecomm, pnl, ret))
                if every:
                    cs[:], nt[:], p[:] = new_cash, new_nt, 0.0
                    tr_col.append(order[:r])
                    tr_rows.append(rows)
                else:
                    np.copyto(cs, new_cash, where=shut)
                    np.copyto(nt, new_nt, where=shut)
                    p[shut] = 0.0
                    tr_col.append(order[:r][shut])
                    tr_rows.append(rows[shut])
            enter = w != 0
            if enter.any():
                every = bool(enter.all())
                fill = px * (1 + w * base_slip) + w * sps
                if quantity is not None:
                    q = np.full(r, float(quantity))
                else:
                    per_share_cost = fill * comm_factor + cps
                    q = np.where(cs > 0, np.floor(fraction * cs / per_share_cost), 0.0)
                if not ((q > 0).all() if every else (q[enter] > 0).all()):
                    return None  # an entry the loop would retry on the following bars
                comm = q * fill * cbps / 1e4 + q * cps
                newpos = w * q
                new_cash = cs - (newpos * fill + comm)
                new_nt = nt + q * fill
                if every:
                    cs[:], nt[:], p[:] = new_cash, new_nt, newpos
                    e_bar[:r], e_px[:r], e_comm[:r] = i, fill, comm
                else:
                    for dst, src in ((cs, new_cash), (nt, new_nt), (p, newpos), (e_bar[:r], i), (e_px[:r], fill),
                                     (e_comm[:r], comm)):
                        np.copyto(dst, src, where=enter, casting="unsafe")
            ev_cash[:r, k], ev_pos[:r, k] = cs, p
    # Back to column order: a row's initial state, then its events in bar order.
    valid = (np.arange(steps + 1) <= counts_sorted[:, None])[rank]
    starts = (bars[rank] + (np.arange(m) * n)[:, None])[valid]
    out_notional = np.empty(m)
    out_notional[order] = notional
    return starts, ev_cash[rank][valid], ev_pos[rank][valid], tr_col, tr_rows, out_notional


def equity_from_segments(segments: np.ndarray, close: np.ndarray) -> np.ndarray:
    """An equity curve from its constant-state segments (rows of first bar, cash, position; see `GridFills`) and
    its conId's closes: `cash + position * close` over each segment, the same values `simulate_grid` computed."""
    seg = np.asarray(segments, dtype=float).reshape(-1, 3)
    c = np.asarray(close, dtype=float)
    lengths = np.diff(np.append(seg[:, 0].astype(np.int64), len(c)))
    return np.repeat(seg[:, 1], lengths) + np.repeat(seg[:, 2], lengths) * c


def _split_trades(tr_col: list[np.ndarray], tr_rows: list[np.ndarray], m: int) -> list[np.ndarray]:
    """Per column, its round trips in the order they closed."""
    if not tr_col:
        return [np.empty((0, 9)) for _ in range(m)]
    col = np.concatenate(tr_col)
    rows = np.concatenate(tr_rows)
    order = np.argsort(col, kind="stable")  # steps run in event order: stable keeps each column's trades in order
    rows = rows[order]
    bounds = np.searchsorted(col[order], np.arange(m + 1))
    return [rows[bounds[j]:bounds[j + 1]] for j in range(m)]


# The equity matrix is reduced this many cells at a time (~0.5 MB a temporary): a block's temporaries stay in the
# core's cache instead of ~20 MB matrices (1,000 runs of 2,520 bars) streaming through memory a dozen times. Every
# reduction is per row, so a row's values do not depend on the block it is in.
BLOCK_CELLS = 1 << 16


def row_blocks(m: int, n: int) -> list[slice]:
    """Slices of the rows of an m × n matrix, each about `BLOCK_CELLS` cells (at least one row)."""
    rows = max(1, BLOCK_CELLS // max(n, 1))
    return [slice(a, min(a + rows, m)) for a in range(0, m, rows)]


def row_returns(equity: np.ndarray, capital: float) -> np.ndarray:
    """Each row's per-bar returns, bar 0 against `capital`: ``diff(curve) / curve[:-1]`` of the row with the
    capital in front, the same arithmetic without building that curve."""
    out = np.empty_like(equity)
    np.subtract(equity[:, 0], capital, out=out[:, 0])
    np.divide(out[:, 0], capital, out=out[:, 0])
    np.subtract(equity[:, 1:], equity[:, :-1], out=out[:, 1:])
    np.divide(out[:, 1:], equity[:, :-1], out=out[:, 1:])
    return out


def squared_deviations(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(x - mean)² of each row (`mean` = ``x.mean(axis=1, keepdims=True)``): what ``np.std``/``np.var`` sum, by
    their own arithmetic, so ``sqrt(squared_deviations(x, mean).sum(axis=1) / (n - 1))`` is
    ``x.std(axis=1, ddof=1)`` bit for bit without computing the mean again (and the sum serves the moments too)."""
    dev = x - mean
    return np.multiply(dev, dev, out=dev)


def grid_metrics(fills: GridFills, index: pd.DatetimeIndex, capital: float) -> list[dict[str, float]]:
    """`metrics.compute_metrics` of every column of `fills` (equity marked on `index`, starting from `capital`),
    reductions over the equity matrix row by row: the same values, bit for bit, as the per-run function."""
    eq = fills.equity
    m, n = eq.shape
    ppy = annualization(index)[0]
    mean, std, dstd, max_dd, eq_mean = (np.zeros(m) for _ in range(5))
    has_down = np.zeros(m, dtype=bool)
    dd_bars = np.zeros(m, dtype=np.int64)
    for rows in row_blocks(m, n):
        block = eq[rows]
        rets = row_returns(block, float(capital))
        mu = rets.mean(axis=1, keepdims=True)
        mean[rows] = mu[:, 0]
        if n > 1:
            std[rows] = np.sqrt(squared_deviations(rets, mu).sum(axis=1) / (n - 1))  # rets.std(axis=1, ddof=1)
        down = np.minimum(rets, 0)
        has_down[rows] = (down < 0).any(axis=1)  # the same as rets < 0
        np.multiply(down, down, out=down)  # ** 2
        dstd[rows] = np.sqrt(np.mean(down, axis=1))
        dd = np.maximum.accumulate(block, axis=1)  # the running peak, then the drawdown in place
        np.divide(block, dd, out=dd)
        np.subtract(dd, 1.0, out=dd)
        max_dd[rows] = -dd.min(axis=1)
        dd_bars[rows] = longest_runs(dd < 0)
        eq_mean[rows] = block.mean(axis=1)
    sq = math.sqrt(ppy)
    years = n / ppy
    # Plain floats per row (tolist: the same doubles as float() of each element, without a numpy scalar each).
    lasts, means, stds, dstds, max_dds = (a.tolist() for a in (eq[:, -1], mean, std, dstd, max_dd))
    downs, dd_lengths, exposure = has_down.tolist(), dd_bars.tolist(), fills.exposure.tolist()
    notional, eq_means = fills.notional.tolist(), eq_mean.tolist()
    out = []
    for j in range(m):
        last = lasts[j]
        cagr = (last / capital) ** (1 / years) - 1.0 if years > 0 and last > 0 else -1.0
        s, d, mdd = stds[j], dstds[j], max_dds[j]
        rows = fills.trades[j]
        out.append({
            "total_return": float(last / capital - 1.0),
            "cagr": float(cagr),
            "annual_volatility": s * sq,
            "sharpe": means[j] / s * sq if s > 0 else 0.0,
            "sortino": means[j] / d * sq if d > 0 and downs[j] else 0.0,
            "calmar": float(cagr / mdd) if mdd > 0 else 0.0,
            "max_drawdown": mdd,
            "max_drawdown_bars": float(dd_lengths[j]),
            **trade_stats(rows[:, 7], rows[:, 8]),
            "time_in_market": exposure[j],
            "turnover": notional[j] / max(eq_means[j], 1e-12),
            "final_equity": last,
            "periods_per_year": float(ppy),
        })
    return out


def longest_runs(mask: np.ndarray) -> np.ndarray:
    """Per row of a 2-D boolean array, the length of its longest run of True values (0 without any)."""
    m, n = mask.shape
    padded = np.zeros((m, n + 2), dtype=np.int8)  # a False on each side closes every run inside its row
    padded[:, 1:-1] = mask
    edges = np.diff(padded.ravel())
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros(m, dtype=np.int64)
    np.maximum.at(out, starts // (n + 2), ends - starts)
    return out


def grid_moments(equity: np.ndarray, capital: float) -> list[dict[str, Any]]:
    """`sweep_rank.moments(period_returns(capital, row))` of every row of an equity matrix (as stored, i.e.
    rounded to 6 decimals by the caller): count, per-period Sharpe, skew and excess kurtosis."""
    m, n = equity.shape
    mean, sd, m2, m3, m4 = (np.zeros(m) for _ in range(5))
    for rows in row_blocks(m, n):
        r = row_returns(equity[rows], float(capital))
        mu = r.mean(axis=1, keepdims=True)
        mean[rows] = mu[:, 0]
        d2 = squared_deviations(r, mu)
        ss = d2.sum(axis=1)  # shared by the standard deviation and the second moment
        if n > 1:
            sd[rows] = np.sqrt(ss / (n - 1))  # r.std(axis=1, ddof=1)
        m2[rows] = ss / n  # np.mean(d2, axis=1)
        d = np.subtract(r, mu, out=r)
        m4[rows] = np.mean(d2 * d2, axis=1)
        m3[rows] = np.mean(np.multiply(d2, d, out=d2), axis=1)
    out = []
    for j in range(m):
        s, v = float(sd[j]), float(m2[j])
        ok = n >= 4 and v > 0
        out.append({"n": n, "sr": float(mean[j]) / s if s > 0 else None,
                    "skew": float(m3[j]) / v ** 1.5 if ok else None, "kurt": float(m4[j]) / v ** 2 - 3.0 if ok else None})
    return out
