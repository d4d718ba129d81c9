"""The backtester's fill loop compiled with numba (cached on disk), for runs without a Python sizer callback.

Same float operations in the same order as `backtester.simulate`'s Python loop (no fastmath), so results are
bit-identical. numba is imported only here, and the backtester imports this module only when numba is already
loaded (research sessions, sweeps that preload it, `MMR_FILL_LOOP=compiled`) or the run has enough fill events to
repay loading it, so a one-shot CLI run keeps its fast start.
"""
from __future__ import annotations

import importlib.util
import math
import sys

import numba
import numpy as np


def _defer_blas_check() -> None:
    """Spare a fresh process scipy.linalg (~0.6 s of its ~1 s numba start-up). When numba first compiles or loads
    cached code it imports its array implementations, whose module-level BLAS check (`numba.np.arraymath`) imports
    `scipy.linalg.cython_blas` — all of scipy.linalg. This loop uses no BLAS: for that one check, scipy being
    installed counts as BLAS present (what numba concludes when it imports), and numba's linear-algebra code still
    runs its full check, importing scipy.linalg, when something compiles it. Does nothing once numba has checked
    or scipy.linalg is loaded; any failure leaves numba's own check."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    try:
        from numba.np import linalg
    except Exception:  # noqa: BLE001 - an optimisation only
        return
    full_check = linalg.ensure_blas

    def scipy_installed() -> None:
        if importlib.util.find_spec("scipy") is None:
            raise ImportError("scipy 0.16+ is required for linear algebra")

    linalg.ensure_blas = scipy_installed
    try:
        from numba.np import arraymath

        arraymath.ensure_blas = full_check
    except Exception:  # noqa: BLE001 - numba imports it again (and checks) when it needs it
        sys.modules.pop("numba.np.arraymath", None)
    finally:
        linalg.ensure_blas = full_check


_defer_blas_check()


@numba.njit(cache=True, nogil=True)
def fill_loop(o, c, target, sizes, has_sizes, capital, quantity, fraction, base_slip, slippage_per_share,
              commission_bps, commission_per_share, k_sigma, mean_vol, has_impact):  # pragma: no cover (compiled)
    """Per bar: fill the wanted direction (the sign of the last non-NaN target before the bar, with its size hint)
    at the open when it differs from the held one, then mark at the close. `quantity` NaN = size by `fraction`
    of cash. Returns (equity, positions, closed round trips as rows of
    side, qty, entry bar, entry price, exit bar, exit price, commission, pnl, return, traded notional)."""
    n = o.shape[0]
    equity = np.empty(n)
    positions = np.empty(n)
    closed = np.empty((n, 9))  # at most one round trip closes per bar
    m = 0
    cash = capital
    pos = 0.0
    notional = 0.0
    e_bar, e_px, e_comm = 0, 0.0, 0.0
    want = 0.0
    pending_size = math.nan
    equity[0] = cash + pos * c[0]
    positions[0] = pos
    for i in range(1, n):
        t = target[i - 1]
        if not math.isnan(t):
            want = np.sign(t)
            pending_size = sizes[i - 1] if has_sizes else math.nan
        cur = 0.0 if pos == 0 else (1.0 if pos > 0 else -1.0)
        if want != cur:
            px = o[i]
            if pos != 0:  # close the open position first
                side = 1 if pos > 0 else -1
                q = abs(pos)
                imp = _impact(has_impact, k_sigma, mean_vol, i, q)
                fill = px * (1 - side * (base_slip + imp)) - side * slippage_per_share
                comm = q * fill * commission_bps / 1e4 + q * commission_per_share
                cash += pos * fill - comm
                notional += q * fill
                pnl = side * q * (fill - e_px) - comm - e_comm
                closed[m, 0] = side
                closed[m, 1] = q
                closed[m, 2] = e_bar
                closed[m, 3] = e_px
                closed[m, 4] = i
                closed[m, 5] = fill
                closed[m, 6] = comm + e_comm
                closed[m, 7] = pnl
                closed[m, 8] = pnl / (q * e_px) if e_px else 0.0
                m += 1
                pos = 0.0
            if want != 0:
                side = int(want)
                fill = px * (1 + side * base_slip) + side * slippage_per_share
                sized_by_cash = False
                frac = fraction
                if not math.isnan(pending_size) and pending_size > 0:
                    q = pending_size
                elif not math.isnan(quantity):
                    q = quantity
                else:
                    sized_by_cash = True
                    if not math.isnan(pending_size):
                        frac = -pending_size
                    per_share_cost = fill * (1 + commission_bps / 1e4) + commission_per_share
                    q = float(math.floor(frac * cash / per_share_cost)) if cash > 0 else 0.0
                if q > 0 and has_impact:  # the impact depends on the size: price it, then fit the cash again
                    fill = px * (1 + side * (base_slip + _impact(has_impact, k_sigma, mean_vol, i, q))) \
                        + side * slippage_per_share
                    if sized_by_cash:
                        per_share_cost = fill * (1 + commission_bps / 1e4) + commission_per_share
                        q = min(q, float(math.floor(frac * cash / per_share_cost)))
                if q > 0:
                    comm = q * fill * commission_bps / 1e4 + q * commission_per_share
                    pos = side * q
                    cash -= pos * fill + comm
                    notional += q * fill
                    e_bar, e_px, e_comm = i, fill, comm
        equity[i] = cash + pos * c[i]
        positions[i] = pos
    return equity, positions, closed[:m], notional


@numba.njit(cache=True, nogil=True, inline="always")
def _impact(has_impact, k_sigma, mean_vol, i, q):  # pragma: no cover (compiled)
    if not has_impact:
        return 0.0
    ks = k_sigma[i]
    vol = mean_vol[i]
    if not (math.isfinite(ks) and math.isfinite(vol)) or vol <= 0:
        return 0.0
    return ks * math.sqrt(q / vol)
