"""`Strategy.precompute`: indicators computed once over the whole series, seen by `on_prices` only up to the
current bar; the lookahead checker catches an indicator that peeks; live dispatch gives the backtest's signals."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.errors import BacktestError
from trader.simulation.backtester import _prepare, run_backtest, target_series
from trader.simulation.data import sim_bars
from trader.simulation.lookahead import check_lookahead
from trader.strategy.api import Action, Signal, Strategy
from trader.strategy.dispatch import ConIdSlot, backtest_signals
from trader.strategy.loader import load_strategy_class

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"


def _bars(n: int = 1200, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(datetime(2026, 1, 5, 14, 30, tzinfo=UTC), periods=n, freq="1min")
    c = 100 + np.cumsum(rng.normal(0, 0.2, n))
    return pd.DataFrame({"open": c + rng.normal(0, 0.05, n), "high": c + 0.2, "low": c - 0.2, "close": c,
                         "volume": 1000.0}, index=idx)


class _Peek(Strategy):
    """Buys when the NEXT close is higher: its indicator looks ahead."""

    def precompute(self, prices):
        return {"next_close": prices["close"].shift(-1)}

    def on_prices(self, prices):
        nxt = prices.last("next_close")
        return None if np.isnan(nxt) else Signal(Action.BUY if nxt > prices.last("close") else Action.FLAT)


class _Seen(Strategy):
    """Records how much of each indicator the callback could see."""

    def __init__(self):
        self.seen: list[tuple[int, int]] = []

    def precompute(self, prices):
        return {"bar_no": np.arange(len(prices), dtype=float)}

    def on_prices(self, prices):
        self.seen.append((len(prices), len(prices["bar_no"])))
        assert prices["bar_no"][-1] == prices.last("bar_no") == len(prices) - 1
        return None


def test_callback_sees_indicators_only_up_to_the_current_bar():
    s = _Seen()
    target_series(s, _prepare(_bars(50)), "bar-by-bar")
    assert s.seen == [(k, k) for k in range(1, 51)]


def test_precomputed_example_trades_like_the_vectorized_crossover_and_does_not_peek():
    bars = sim_bars(265598, 700)
    fast = load_strategy_class(EXAMPLES, "ma_crossover_fast.py")
    ref = load_strategy_class(EXAMPLES, "ma_crossover.py")
    got = run_backtest(fast(), bars, quantity=100)
    want = run_backtest(ref(), bars, quantity=100, mode="vectorized")
    assert got.mode == "bar-by-bar" and len(got.trades) > 5
    assert got.trades == want.trades and np.array_equal(got.equity.to_numpy(), want.equity.to_numpy())
    assert check_lookahead(fast, bars.iloc[:300], checkpoints=30).ok


def test_lookahead_checker_catches_a_peeking_indicator():
    report = check_lookahead(_Peek, _bars(300), checkpoints=30)
    assert not report.ok and "lookahead" in report.meaning


def test_live_dispatch_recomputes_and_matches_the_backtest():
    df = _bars()
    cls = load_strategy_class(EXAMPLES, "ma_crossover_fast.py")
    slot = ConIdSlot("s", cls(), 7)
    live = [(s.bar_time, s.action) for s in slot.warm_up(df)]
    expected = backtest_signals(cls(), df)
    assert expected and live == expected


@pytest.mark.parametrize("bad", [{"close": np.zeros(10)}, {"x": np.zeros(3)}, [1.0]])
def test_bad_precompute_output_is_refused(bad):
    class Bad(Strategy):
        def precompute(self, prices):
            return bad

        def on_prices(self, prices):
            return None

    with pytest.raises(BacktestError, match="precompute"):
        target_series(Bad(), _prepare(_bars(10)), "bar-by-bar")
