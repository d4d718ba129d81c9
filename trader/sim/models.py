"""Value types and events shared by the simulated exchange (SIM-CORE) and the TWS gateway (SIM-PROTO).

Pure Python: no sockets, no asyncio, no ib_async. The matching engine returns lists of `SimEvent`; the
gateway turns each into TWS messages for the right client(s).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class SecType(str, Enum):
    """IB security types the simulator knows."""

    STK = "STK"
    CASH = "CASH"
    FUT = "FUT"
    OPT = "OPT"
    FOP = "FOP"
    IND = "IND"


# IB order statuses the engine uses.
PENDING_SUBMIT = "PendingSubmit"
PRE_SUBMITTED = "PreSubmitted"
SUBMITTED = "Submitted"
FILLED = "Filled"
CANCELLED = "Cancelled"
API_CANCELLED = "ApiCancelled"
INACTIVE = "Inactive"
DONE_STATUSES = frozenset({FILLED, CANCELLED, API_CANCELLED, INACTIVE})

ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL", "TRAIL LIMIT"})


@dataclass(frozen=True, slots=True)
class SimContract:
    """One tradable (or, for IND, quotable) instrument in the simulated universe."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    multiplier: str  # "" for STK/CASH/IND, "100" for OPT, "50" for ES …
    last_trade_date: str  # "" or "YYYYMMDD"
    strike: float
    right: str  # "", "C", "P"
    min_tick: float
    long_name: str
    underlying_con_id: int
    placeholder_id: bool  # True when con_id is ours, not IB's real one
    time_zone: str  # e.g. "US/Eastern"
    # contractDetails extras
    valid_exchanges: str = ""
    order_types: str = "ACTIVETIM,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,GAT,GTC,GTD,LIT,LMT,MIT,MKT,MOC,NONALGO,OCA,REL,SCALE,STP,STPLMT,TRAIL,TRAILLIMIT,WHATIF"
    liquid_hours: str = ""  # IB text, e.g. "20240102:0930-20240102:1600;…" (built by SimMarket when asked)
    trading_hours: str = ""
    industry: str = ""
    category: str = ""
    subcategory: str = ""
    market_name: str = ""
    underlying_symbol: str = ""
    underlying_sec_type: str = ""
    contract_month: str = ""  # "YYYYMM" for FUT/FOP/OPT
    price_magnifier: int = 1
    md_size_multiplier: int = 1
    # simulation parameters (from the CSV; not sent to clients)
    start_price: float = 100.0
    volatility: float = 0.25  # annualised
    avg_volume: float = 1_000_000.0  # shares (or contracts) per day

    @property
    def multiplier_value(self) -> float:
        """The numeric contract multiplier (1 when none)."""
        try:
            return float(self.multiplier) if self.multiplier else 1.0
        except ValueError:
            return 1.0

    @property
    def is_derivative(self) -> bool:
        """True for options (OPT/FOP), priced off the underlying."""
        return self.sec_type in ("OPT", "FOP")


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book and session statistics at one instant."""

    con_id: int
    time: datetime
    bid: float
    ask: float
    last: float
    bid_size: float
    ask_size: float
    last_size: float
    volume: float  # session volume so far
    open: float
    high: float
    low: float
    close: float  # previous session close

    @property
    def mid(self) -> float:
        """Mid price."""
        return (self.bid + self.ask) / 2.0


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; `time` is the bar's start (IB convention)."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


@dataclass(slots=True)
class SimOrder:
    """An order as the engine keeps it: what the client sent plus engine-maintained state."""

    order_id: int
    client_id: int
    perm_id: int
    con_id: int
    action: str  # "BUY" / "SELL"
    total_quantity: float
    order_type: str  # "MKT","LMT","STP","STP LMT","TRAIL","TRAIL LIMIT"
    lmt_price: float | None = None
    aux_price: float | None = None
    trailing_percent: float | None = None
    trail_stop_price: float | None = None
    lmt_price_offset: float | None = None
    tif: str = "DAY"
    parent_id: int = 0
    oca_group: str = ""
    oca_type: int = 0
    transmit: bool = True
    outside_rth: bool = False
    account: str = ""
    order_ref: str = ""
    # engine-maintained state
    status: str = PENDING_SUBMIT
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    triggered: bool = False  # STP/TRAIL have turned into MKT/LMT
    commission: float = 0.0  # total commission so far (openOrder's orderState)
    created: datetime | None = None
    completed_time: datetime | None = None
    completed_status: str = ""  # text for completedOrders, e.g. "Filled Size: 100"
    extra: dict = field(default_factory=dict)  # free-form fields the gateway wants echoed back

    @property
    def remaining(self) -> float:
        """Quantity not yet filled."""
        return max(self.total_quantity - self.filled, 0.0)

    @property
    def is_done(self) -> bool:
        """True once the order is Filled/Cancelled/Inactive."""
        return self.status in DONE_STATUSES

    def snapshot(self) -> SimOrder:
        """An independent copy (events carry snapshots so later engine changes don't leak into them)."""
        return copy.deepcopy(self)


@dataclass(frozen=True, slots=True)
class OrderStatusEvent:
    """An order's status changed (or its fill quantities did): → orderStatus."""

    order: SimOrder


@dataclass(frozen=True, slots=True)
class OpenOrderEvent:
    """An order was accepted or modified: → openOrder."""

    order: SimOrder


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """One fill: → execDetails."""

    order_id: int
    client_id: int
    perm_id: int
    con_id: int
    exec_id: str  # IB style "0000e0d5.6579a2b3.01.01"; a correction re-issues with ".02"
    time: datetime
    account: str
    exchange: str
    side: str  # "BOT" / "SLD"
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str


@dataclass(frozen=True, slots=True)
class CommissionEvent:
    """The commission of one execution: → commissionReport (separate so the gateway can delay it)."""

    exec_id: str
    commission: float
    currency: str
    realized_pnl: float | None


@dataclass(frozen=True, slots=True)
class OrderErrorEvent:
    """An IB error about one order: → error(reqId=order_id, code, message). 201 rejected, 202 cancelled …"""

    order_id: int
    client_id: int
    code: int
    message: str


SimEvent = OrderStatusEvent | OpenOrderEvent | ExecutionEvent | CommissionEvent | OrderErrorEvent
