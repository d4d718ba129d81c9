"""The compiled fill loop (trader/simulation/fill_kernel.py) gives bit-identical results to the Python loop on
random targets, size hints, sizing modes and every cost model, including square-root impact."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import Costs, simulate

pytest.importorskip("numba")


def _bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    idx = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame({"open": open_, "close": close, "volume": rng.integers(0, 5_000, n).astype(float)},
                        index=idx)


@pytest.mark.parametrize("seed", range(24))
def test_compiled_loop_equals_python_loop(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    df = _bars(n, seed)
    target = rng.choice([np.nan, np.nan, 1.0, -1.0, 0.0, 0.5, -2.0], size=n)
    sizes = None
    if seed % 3 == 0:
        sizes = np.where(rng.random(n) < 0.5, np.nan, rng.choice([5.0, -0.3, -1.0, 0.0], size=n))
    costs = Costs(*(float(x) for x in rng.choice([0.0, 1.0, 5.0], size=5)),
                  impact_coefficient=float(rng.choice([0.0, 0.5, 3.0])), impact_window=int(rng.integers(2, 30)))
    kw = dict(con_id=3, capital=float(rng.choice([1_000.0, 100_000.0, 10.0])), costs=costs, sizes=sizes,
              quantity=None if seed % 2 else float(rng.choice([10.0, 0.5])), fraction=float(rng.choice([1.0, 0.5, 2.0])))
    monkeypatch.setenv("MMR_FILL_LOOP", "python")
    ref = simulate(df, target, **kw)
    monkeypatch.setenv("MMR_FILL_LOOP", "compiled")
    got = simulate(df, target, **kw)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[2], ref[2])  # bit-identical
    assert got[1] == ref[1]
    assert got[3] == ref[3]


def test_compiled_loop_is_chosen_only_when_it_pays(monkeypatch):
    from trader.simulation import backtester

    monkeypatch.delenv("MMR_FILL_LOOP", raising=False)
    assert backtester._use_compiled(10**6)
    monkeypatch.setenv("MMR_FILL_LOOP", "python")
    assert not backtester._use_compiled(10**6)


def test_trades_built_on_first_access_equal_the_eager_ones():
    from trader.simulation.backtester import _prepare, run_backtest
    from trader.simulation.metrics import compute_metrics
    from trader.strategy.api import Strategy

    class Flip(Strategy):
        def signals(self, prices):
            return pd.Series(np.where(np.arange(len(prices)) % 7 < 3, 1.0, -1.0), index=prices.index)

    df = _prepare(_bars(300, 1).assign(high=lambda d: d[["open", "close"]].max(axis=1),
                                       low=lambda d: d[["open", "close"]].min(axis=1)))
    result = run_backtest(Flip(), df, capital=10_000.0, costs=Costs(commission_bps=2.0))
    lazy_metrics = dict(result.metrics)
    pnl = result.trade_column("pnl")
    _, trades, _, _ = simulate(df, Flip().signals(df).to_numpy(), capital=10_000.0, costs=Costs(commission_bps=2.0))
    assert result.trades == trades and len(trades) > 50  # built now
    assert np.array_equal(pnl, result.trade_column("pnl"))
    assert compute_metrics(result) == lazy_metrics


def test_a_process_switches_to_the_compiled_loop_once_its_runs_repay_loading_numba():
    """A long-lived process (sweep worker) starts on the Python loop and loads the compiled one once the fill
    events of its runs add up to COMPILED_MIN_EVENTS; the results stay the same across the switch."""
    import subprocess
    import sys

    code = """
import sys, numpy as np, pandas as pd
from trader.simulation import backtester as bt
bt.COMPILED_MIN_EVENTS = 300
n = 400
close = 100 + np.cumsum(np.random.default_rng(5).normal(0, 1, n))
df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close},
                  index=pd.bdate_range("2020-01-06", periods=n, tz="UTC"))
target = np.where(np.arange(n) % 4 < 2, 1.0, 0.0)  # ~100 direction changes per run
first = bt.simulate_rows(df, target)
before = "numba" in sys.modules
runs = [bt.simulate_rows(df, target) for _ in range(4)]
after = "numba" in sys.modules
same = all(np.array_equal(first[0], r[0]) and np.array_equal(first[1], r[1]) for r in runs)
print(before, after, same)
"""
    from trader.testing import clean_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env())
    assert out.stdout.split() == ["False", "True", "True"], out.stdout + out.stderr


def test_a_fresh_process_loads_the_compiled_loop_without_scipy_linalg_and_numba_blas_still_works():
    """Loading the fill loop does not import scipy.linalg (numba's module-level BLAS probe is answered by scipy
    being installed); numba's BLAS-backed np.dot still compiles afterwards, running its full check then."""
    import subprocess
    import sys

    code = """
import sys, numpy as np
from trader.simulation.fill_kernel import fill_loop
o = np.array([10.0, 11.0, 12.0, 13.0]); e = np.empty(0)
equity = fill_loop(o, o, np.array([1.0, 1.0, 0.0, 0.0]), e, False, 100.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, e, e,
                   False)[0]
linalg_loaded = "scipy.linalg" in sys.modules
import numba
from numba.np import arraymath, linalg
dot = numba.njit(lambda a, b: np.dot(a, b))
a = np.arange(6.0).reshape(2, 3)
blas_ok = np.array_equal(dot(a, a.T), a @ a.T) and arraymath._HAVE_BLAS
restored = arraymath.ensure_blas is linalg.ensure_blas and "scipy.linalg" in sys.modules
print(equity.tolist(), linalg_loaded, blas_ok, restored)
"""
    from trader.testing import clean_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env())
    assert out.stdout.split()[-3:] == ["False", "True", "True"], out.stdout + out.stderr
    assert out.stdout.startswith("[100.0, 100.0, 101.0, 102.0]"), out.stdout
