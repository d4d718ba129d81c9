"""Strategy API: the same class runs in backtests and live.

Subclass `Strategy`, implement `on_prices(prices) -> Signal | None` (bar-by-bar) and optionally
`signals(prices) -> pd.Series` (vectorized: +1 long, -1 short, 0 flat, NaN = keep position). Tunable
parameters are UPPER_CASE class attributes; `params()` lists them and `with_params()` overrides them.

A bar-by-bar strategy may also implement `precompute(prices) -> dict[str, array]`: indicators computed once over
the whole series (e.g. `{"fast": prices["close"].rolling(10).mean()}`), which `on_prices` reads from its view
like a bar column, only up to the current bar (`prices["fast"]`, `prices.last("fast")`). Each value must depend
only on bars up to its own; `strategies lookahead` checks it by rerunning on truncated histories.

A vectorized strategy may also implement `signals_grid(prices, params_list) -> 2-D array` (bars × combos): the
`signals` of every params dict of a sweep chunk in one pass, sharing indicators between combos (column j must equal
`with_params(**params_list[j]).signals(prices)`); sweeps use it when present (`strategies/ma_crossover.py`).

It may also implement `signals_wide(prices) -> 2-D array` (bars × conIds): the `signals` of several conIds that
share their timestamps in one pass, `prices["close"]` being a DataFrame with one column per conId (column j must
equal `signals` on conId j's bars); a backtest over a dict of conIds uses it when present (trader/simulation/wide.py),
and live a bar close of all its conIds is decided in one call (trader/strategy/wide_live.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Action(str, Enum):
    """What a strategy wants at the next bar: go long, go short, or be flat."""

    BUY = "BUY"
    SELL = "SELL"
    FLAT = "FLAT"


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's decision on one bar. `quantity` (shares) or `fraction` (of equity) are sizing hints.
    `max_hold_bars` / `close_by_time` ("HH:MM", optionally "HH:MM Area/City"; else UTC) close the position this
    signal opens after that many bars / by that time of day (`trader.strategy.exits`)."""

    action: Action
    probability: float = 1.0
    quantity: float | None = None
    fraction: float | None = None
    max_hold_bars: int | None = None
    close_by_time: str | None = None

    @property
    def target(self) -> int:
        """Target direction: +1 long, -1 short, 0 flat."""
        return _TARGETS[self.action]


_TARGETS = {Action.BUY: 1, Action.SELL: -1, Action.FLAT: 0}


class Strategy:
    """Base class for strategies. UPPER_CASE class attributes are tunable parameters."""

    def on_prices(self, prices: Any) -> Signal | None:  # prices: DataFrame-like view of bars up to now
        """Return a Signal for the last bar of `prices` or None to keep the current position."""
        raise NotImplementedError

    @classmethod
    def params(cls) -> dict[str, Any]:
        """Tunable parameters (UPPER_CASE class attributes, including inherited ones)."""
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for k, v in vars(klass).items():
                if k.isupper() and not k.startswith("_") and not callable(v):
                    out[k] = v
        return out

    @classmethod
    def param_problems(cls, params: dict[str, Any]) -> list[str]:
        """What is wrong with a full parameter set (the defaults with a run's overrides), one message each; []
        when it makes sense. ``backtest --param`` and ``strategies deploy`` refuse a set with problems (sweeps
        run their grids as given). Override to declare relations between parameters, e.g. FAST < SLOW."""
        return []

    def with_params(self, **overrides: Any) -> Strategy:
        """Set parameters on this instance (unknown names raise ValueError); returns self."""
        known = self.params()
        for k, v in overrides.items():
            if k not in known:
                raise ValueError(f"unknown parameter {k!r}; known: {sorted(known)}")
            default = known[k]
            setattr(self, k, type(default)(v) if isinstance(default, (int, float)) and not isinstance(default, bool) else v)
        return self

    @property
    def vectorized(self) -> bool:
        """True when the class implements `signals()` (whole-series mode)."""
        return callable(getattr(type(self), "signals", None))
