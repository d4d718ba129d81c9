"""Trading value types shared by the risk gate, sizing, proposals and portfolio risk.

Pure dataclasses: no ib_async, zmq or duckdb here. The broker adapter converts ib_async objects into these, the
services send them over the wire (registered with the codec), and the domain modules compute on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from trader.messaging.codec import wire


@wire
class Action(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL: the sign of the position change."""
        return 1 if self is Action.BUY else -1


@wire
class OrderType(str, Enum):
    MARKET = "MKT"
    LIMIT = "LMT"
    STOP = "STP"
    STOP_LIMIT = "STP LMT"
    TRAILING_STOP = "TRAIL"


@wire
class OrderSource(str, Enum):
    """Which path an order came from (every path passes the same risk gate)."""

    CLI = "cli"
    PROPOSAL = "proposal"
    STRATEGY = "strategy"


@wire
@dataclass(frozen=True, slots=True)
class Position:
    """One position. ``quantity`` is signed: negative is short. Values are in ``currency``."""

    symbol: str
    quantity: float
    avg_cost: float
    market_price: float | None = None
    con_id: int = 0
    sec_type: str = "STK"
    exchange: str = ""
    currency: str = "USD"
    multiplier: float = 1.0
    unrealized_pnl: float | None = None
    realized_pnl: float = 0.0
    daily_pnl: float | None = None

    @property
    def market_value(self) -> float | None:
        """Signed market value (negative for shorts), or None when no price is known."""
        if self.market_price is None or not math.isfinite(self.market_price):
            return None
        return self.quantity * self.market_price * self.multiplier


@wire
@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Account-level figures the risk gate and sizing need. ``None`` means *unknown* (the gate fails closed)."""

    net_liquidation: float | None
    cash: float | None = None
    daily_pnl: float | None = None
    realized_pnl: float | None = None
    unrealized_pnl: float | None = None
    buying_power: float | None = None
    currency: str = "USD"
