"""Fills and P&L per strategy, attributed through the orders each strategy caused.

A strategy's proposals are recorded by the runtime (``strategy_proposal`` events: proposal id, strategy, conId);
trader_service sends a proposal's order with ``orderRef = proposal-<id>`` and records every execution as a
``fill`` event (and its ``commission``) under that order ref as the correlation id. Joining the two gives each
strategy's fills. Pure: plain rows in, plain rows out, so the arithmetic is tested by hand.

P&L (per conId, then summed): ``pnl = cash + position × mark − commissions`` where ``cash`` is −Σ signed
quantity × price over the fills and ``mark`` the latest bar close the runtime saw (else the last fill price).
``today_pnl`` is the same sum over today's (UTC) fills only, marked at the same mark: what today's trading made;
a position carried in from an earlier day counts in ``pnl``, not in ``today_pnl``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from trader.trading.fills import execution_key, execution_revision


@dataclass(frozen=True, slots=True)
class StrategyFill:
    """One execution of an order a strategy caused (``signed``: + bought, − sold)."""

    strategy: str
    con_id: int
    symbol: str
    proposal_id: int
    exec_id: str
    side: str  # BOT / SLD
    shares: float
    price: float
    time: str | None
    commission: float = 0.0

    @property
    def signed(self) -> float:
        return self.shares if self.side == "BOT" else -self.shares


def proposal_index(proposals: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``strategy_proposal`` payloads keyed by the order ref their orders carry (``proposal-<id>``)."""
    return {f"proposal-{int(p['proposal_id'])}": p for p in proposals if p.get("proposal_id") is not None}


def attribute(proposals: list[dict[str, Any]], fills: list[dict[str, Any]],
              commissions: list[dict[str, Any]] = ()) -> list[StrategyFill]:
    """Every fill of a strategy's orders, oldest first. ``fills``/``commissions`` are trader_service event rows
    (``correlation_id``, ``payload``); a corrected execution replaces the earlier revision (IB's execId rule)
    and a fill reported twice counts once."""
    index = proposal_index(proposals)
    fees: dict[str, float] = {}
    for c in commissions:
        pay = c.get("payload") or {}
        if pay.get("exec_id") and pay.get("commission") is not None:
            fees[pay["exec_id"]] = float(pay["commission"])
    latest: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for f in fills:
        prop = index.get(f.get("correlation_id") or "")
        pay = f.get("payload") or {}
        if prop is None or not pay.get("exec_id"):
            continue
        key = execution_key(pay["exec_id"])
        held = latest.get(key)
        if held is None:
            order.append(key)
        elif execution_revision(pay["exec_id"]) < execution_revision(held["payload"]["exec_id"]):
            continue
        latest[key] = {"prop": prop, "payload": pay}
    out = []
    for key in order:
        prop, pay = latest[key]["prop"], latest[key]["payload"]
        t = pay.get("time")
        out.append(StrategyFill(
            strategy=prop["strategy"], con_id=int(prop["con_id"]), symbol=prop.get("symbol") or pay.get("symbol", ""),
            proposal_id=int(prop["proposal_id"]), exec_id=pay["exec_id"], side=pay.get("side", "BOT"),
            shares=float(pay["shares"]), price=float(pay["price"]),
            time=t.isoformat() if isinstance(t, datetime) else t, commission=fees.get(pay["exec_id"], 0.0)))
    return out


def fill_day(t: str | None) -> date | None:
    """The UTC date of a fill's ISO time (None when missing or unreadable)."""
    if not t:
        return None
    try:
        d = datetime.fromisoformat(t)
    except ValueError:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UTC).date()


def strategy_pnl(fills: list[StrategyFill], marks: dict[int, float], today: date) -> dict[str, Any]:
    """One strategy's position, cash, commissions and P&L per conId and in total (see the module doc)."""
    per: dict[int, dict[str, Any]] = {}
    for f in fills:
        row = per.setdefault(f.con_id, {"con_id": f.con_id, "symbol": f.symbol, "position": 0.0, "cash": 0.0,
                                        "commission": 0.0, "fills": 0, "last_price": f.price,
                                        "_today": []})
        row["position"] += f.signed
        row["cash"] -= f.signed * f.price
        row["commission"] += f.commission
        row["fills"] += 1
        row["last_price"] = f.price
        if fill_day(f.time) == today:
            row["_today"].append(f)
    total = {"pnl": 0.0, "today_pnl": 0.0, "commission": 0.0, "fills": 0}
    for con_id, row in per.items():
        mark = marks.get(con_id, row["last_price"])
        todays = row.pop("_today")
        row["mark"] = mark
        row["pnl"] = row["cash"] + row["position"] * mark - row["commission"]
        row["today_pnl"] = sum(f.signed * (mark - f.price) - f.commission for f in todays)
        for k in ("pnl", "today_pnl", "commission", "fills"):
            total[k] += row[k]
    return {**total, "positions": {str(c): r["position"] for c, r in per.items() if r["position"]},
            "by_conid": list(per.values())}


def fills_rows(fills: list[StrategyFill]) -> list[dict[str, Any]]:
    """Fills as plain rows, newest first (the ``strategies fills`` reply)."""
    return [{**asdict(f), "signed": f.signed} for f in reversed(fills)]
