"""ib_async objects → MMR values: contract dicts, positions, account snapshot, quotes, order and fill rows.

IB marks "no value" in several ways — ``nan`` in tickers, ``UNSET_DOUBLE`` (1.797e308) in orders and commission
reports, ``-1`` for a missing bid/ask, empty strings in account values. Every one of them becomes ``None`` here,
because the risk gate fails closed on ``None`` and must never see a made-up zero.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ib_async import IB, Contract, ContractDetails, Fill, Ticker, Trade

from trader.trading.models import AccountSnapshot, Position

__all__ = [
    "contract_to_dict",
    "position_rows",
    "account_snapshot",
    "start_pnl",
    "start_pnl_single",
    "daily_pnl",
    "ticker_to_quote",
    "trade_to_order_row",
    "fill_to_row",
    "num",
]

# IB's "unset" double (sys.float_info.max): anything this large is a placeholder, not a price.
_UNSET_LIMIT = 1e300

ACCOUNT_TAGS = {
    "net_liquidation": "NetLiquidation",
    "cash": "TotalCashValue",
    "buying_power": "BuyingPower",
    "unrealized_pnl": "UnrealizedPnL",
    "realized_pnl": "RealizedPnL",
}


def num(value: Any) -> float | None:
    """A finite float, or None for nan / inf / IB's UNSET_DOUBLE / empty strings / None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x) or abs(x) >= _UNSET_LIMIT:
        return None
    return x


def _price(value: Any) -> float | None:
    """A quote price: like :func:`num`, and IB's -1 ("no bid/ask") is None too."""
    x = num(value)
    return None if x is None or x < 0 else x


def _iso(t: Any) -> str | None:
    return t.isoformat() if isinstance(t, datetime) else (str(t) if t else None)


def contract_to_dict(obj: Contract | ContractDetails) -> dict[str, Any]:
    """The contract dict of trader_api.md (con_id, symbol, sec_type, … long_name, min_tick, min_size,
    size_increment).

    ``ContractDetails`` fill ``long_name``, ``min_tick`` and the size rules; a bare ``Contract`` leaves them
    empty/None.
    """
    details = obj if isinstance(obj, ContractDetails) else None
    c = details.contract if details is not None and details.contract is not None else obj
    assert isinstance(c, Contract)
    return {
        "con_id": int(c.conId or 0),
        "symbol": c.symbol,
        "sec_type": c.secType,
        "exchange": c.exchange,
        "primary_exchange": c.primaryExchange,
        "currency": c.currency,
        "local_symbol": c.localSymbol,
        "trading_class": c.tradingClass,
        "multiplier": c.multiplier,
        "last_trade_date": c.lastTradeDateOrContractMonth,
        "strike": num(c.strike) if c.strike else None,
        "right": c.right,
        "long_name": details.longName if details is not None else "",
        "min_tick": num(details.minTick) if details is not None else None,
        # Smallest order and step (IB: 1 for most stocks, 0.0001 where fractions trade); None when unknown.
        "min_size": (num(details.minSize) or None) if details is not None else None,
        "size_increment": (num(details.sizeIncrement) or None) if details is not None else None,
    }


def _multiplier(c: Contract) -> float:
    m = num(c.multiplier) if c.multiplier else None
    return m if m and m > 0 else 1.0


def _daily_by_con_id(ib: IB) -> dict[int, float | None]:
    """Daily P&L per conId from any reqPnLSingle subscriptions (none: empty)."""
    return {p.conId: num(p.dailyPnL) for p in ib.pnlSingle()}


def position_rows(ib: IB, account: str = "") -> list[Position]:
    """Positions from ``ib.portfolio()`` (prices, market value, P&L), plus any that only ``ib.positions()`` knows.

    ``avg_cost`` is per unit (IB's averageCost divided by the multiplier), comparable with ``market_price``.
    Positions missing from the portfolio have ``market_price``/``unrealized_pnl`` None (unknown, not zero).
    Rows are sorted by symbol, then conId, so row numbers are stable.
    """
    daily = _daily_by_con_id(ib)
    rows: dict[tuple[str, int], Position] = {}
    for item in ib.portfolio(account):
        c = item.contract
        if not item.position:
            continue
        mult = _multiplier(c)
        rows[(item.account, c.conId)] = Position(
            symbol=c.symbol, quantity=float(item.position), avg_cost=(num(item.averageCost) or 0.0) / mult,
            market_price=_price(item.marketPrice), con_id=int(c.conId), sec_type=c.secType,
            exchange=c.primaryExchange or c.exchange, currency=c.currency, multiplier=mult,
            unrealized_pnl=num(item.unrealizedPNL), realized_pnl=num(item.realizedPNL) or 0.0,
            daily_pnl=daily.get(c.conId),
        )
    for p in ib.positions(account):
        c = p.contract
        if not p.position or (p.account, c.conId) in rows:
            continue
        mult = _multiplier(c)
        rows[(p.account, c.conId)] = Position(
            symbol=c.symbol, quantity=float(p.position), avg_cost=(num(p.avgCost) or 0.0) / mult,
            market_price=None, con_id=int(c.conId), sec_type=c.secType,
            exchange=c.primaryExchange or c.exchange, currency=c.currency, multiplier=mult,
            unrealized_pnl=None, daily_pnl=daily.get(c.conId),
        )
    return sorted(rows.values(), key=lambda r: (r.symbol, r.con_id))


def _account_values(ib: IB, account: str) -> dict[str, tuple[str, str]]:
    """tag → (value, currency), preferring the base-currency row (IB also sends per-currency and BASE rows)."""
    out: dict[str, tuple[str, str]] = {}
    values = list(ib.accountValues(account))
    # accountSummary rows (if someone subscribed) only fill tags accountValues lacks
    summary = [v for v in ib.wrapper.acctSummary.values() if not account or v.account == account]
    for v in values + summary:
        held = out.get(v.tag)
        # keep the first row that names a real currency; "" / "BASE" rows only fill a gap
        if held is None or (held[1] in ("", "BASE") and v.currency not in ("", "BASE")):
            out[v.tag] = (v.value, v.currency)
    return out


def start_pnl(ib: IB, account: str) -> None:
    """Subscribe to IB's account P&L once (``reqPnL``); calling again is a no-op."""
    if account and not ib.pnl(account):
        ib.reqPnL(account)


def start_pnl_single(ib: IB, account: str, con_id: int) -> None:
    """Subscribe to one position's P&L (``reqPnLSingle``) once; calling again is a no-op."""
    if account and con_id and not ib.pnlSingle(account, "", con_id):
        ib.reqPnLSingle(account, "", con_id)


def daily_pnl(ib: IB, account: str) -> float | None:
    """Daily P&L from the ``reqPnL`` subscription (see :func:`start_pnl`); None when not subscribed or unset."""
    for p in ib.pnl(account):
        return num(p.dailyPnL)
    return None


def cash_balances(ib: IB, account: str = "") -> list[dict[str, Any]]:
    """Cash per currency from IB's per-currency ``CashBalance`` rows, each with its ``ExchangeRate`` (base
    units per unit) and value in the base currency (None when IB sent no rate); the base currency first."""
    balances: dict[str, float] = {}
    rates: dict[str, float] = {}
    for v in ib.accountValues(account):
        if v.currency in ("", "BASE"):
            continue
        if v.tag == "CashBalance" and num(v.value) is not None:
            balances[v.currency] = num(v.value)  # type: ignore[assignment]
        elif v.tag == "ExchangeRate" and num(v.value) is not None:
            rates[v.currency] = num(v.value)  # type: ignore[assignment]
    rows = [{"currency": ccy, "balance": amount, "exchange_rate": rates.get(ccy),
             "base_value": amount * rates[ccy] if ccy in rates else None} for ccy, amount in balances.items()]
    return sorted(rows, key=lambda r: (r["exchange_rate"] != 1.0, r["currency"]))


def account_snapshot(ib: IB, account: str) -> AccountSnapshot:
    """Net liquidation, cash, buying power and P&L from ``accountValues`` (and the P&L subscription if any).

    Any figure IB has not sent is None: the risk gate refuses opening orders on an unknown net liquidation.
    """
    values = _account_values(ib, account)
    fields: dict[str, float | None] = {k: num(values.get(tag, (None, ""))[0]) for k, tag in ACCOUNT_TAGS.items()}
    pnl = next(iter(ib.pnl(account)), None) if account else None
    if pnl is not None:  # the PnL stream is fresher than the 3-minute account update
        for key, attr in (("unrealized_pnl", "unrealizedPnL"), ("realized_pnl", "realizedPnL")):
            live = num(getattr(pnl, attr))
            if live is not None:
                fields[key] = live
    currency = values.get("NetLiquidation", ("", ""))[1]
    return AccountSnapshot(
        net_liquidation=fields["net_liquidation"], cash=fields["cash"], daily_pnl=daily_pnl(ib, account),
        realized_pnl=fields["realized_pnl"], unrealized_pnl=fields["unrealized_pnl"],
        buying_power=fields["buying_power"], currency=currency if currency not in ("", "BASE") else "USD",
    )


def ticker_to_quote(ticker: Ticker) -> dict[str, Any]:
    """A quote dict (time, bid, ask, last, sizes, volume, close, open, high, low); unknown fields are None."""
    return {
        "time": _iso(ticker.time),
        "last_time": _iso(ticker.lastTimestamp),  # the exchange's time of the last trade (tick 45)
        "bid": _price(ticker.bid),
        "ask": _price(ticker.ask),
        "last": _price(ticker.last),
        "bid_size": num(ticker.bidSize),
        "ask_size": num(ticker.askSize),
        "last_size": num(ticker.lastSize),
        "volume": num(ticker.volume),
        "close": _price(ticker.close),
        "open": _price(ticker.open),
        "high": _price(ticker.high),
        "low": _price(ticker.low),
    }


def trade_to_order_row(trade: Trade) -> dict[str, Any]:
    """One open-order row for ``orders()`` (see trader_api.md)."""
    o, s, c = trade.order, trade.orderStatus, trade.contract
    stop = num(o.auxPrice) if o.orderType in ("STP", "STP LMT") else num(o.trailStopPrice)
    return {
        "order_id": int(o.orderId),
        "perm_id": int(o.permId or s.permId or 0),
        "parent_id": int(o.parentId or 0),
        "symbol": c.symbol,
        "con_id": int(c.conId or 0),
        "action": o.action,
        "quantity": num(o.totalQuantity),
        "order_type": o.orderType,
        "limit_price": num(o.lmtPrice) if o.orderType in ("LMT", "STP LMT") else None,
        "stop_price": stop,
        "trailing_percent": num(o.trailingPercent) if o.orderType == "TRAIL" else None,
        "trailing_amount": num(o.auxPrice) if o.orderType == "TRAIL" else None,
        "status": s.status,
        "filled": num(s.filled) or 0.0,
        "remaining": num(s.remaining),
        "avg_fill_price": num(s.avgFillPrice) or None,
        "outside_rth": bool(o.outsideRth),
        "order_ref": o.orderRef,
        "sec_type": c.secType,
        "currency": c.currency,
        "tif": o.tif,
        "oca_group": o.ocaGroup,
    }


def fill_to_row(fill: Fill) -> dict[str, Any]:
    """One execution row for ``trades()``; commission/realized P&L are None until the report arrives."""
    e, cr = fill.execution, fill.commissionReport
    reported = bool(cr and cr.execId)
    return {
        "exec_id": e.execId,
        "order_id": int(e.orderId),
        "perm_id": int(e.permId),
        "symbol": fill.contract.symbol,
        "con_id": int(fill.contract.conId or 0),
        "side": e.side,
        "shares": num(e.shares),
        "price": num(e.price),
        "time": _iso(e.time or fill.time),
        "commission": num(cr.commission) if reported else None,
        "realized_pnl": num(cr.realizedPNL) if reported else None,
    }
