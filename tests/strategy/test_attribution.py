"""Per-strategy fills and P&L: attributed through the proposals' order refs, and equal to the sum of the fills."""
from __future__ import annotations

from datetime import date

from trader.strategy.attribution import attribute, fills_rows, strategy_pnl

TODAY = date(2026, 3, 2)


def _fill(pid: int, exec_id: str, side: str, shares: float, price: float, day: str = "2026-03-02") -> dict:
    return {"correlation_id": f"proposal-{pid}",
            "payload": {"exec_id": exec_id, "side": side, "shares": shares, "price": price,
                        "time": f"{day}T15:00:00+00:00", "symbol": "X"}}


PROPS = [{"proposal_id": 1, "strategy": "a", "con_id": 10, "symbol": "X"},
         {"proposal_id": 2, "strategy": "a", "con_id": 10, "symbol": "X"},
         {"proposal_id": 3, "strategy": "b", "con_id": 10, "symbol": "X"}]


def test_fills_are_attributed_by_order_ref_and_corrections_replace() -> None:
    fills = [_fill(1, "e1.01", "BOT", 10, 100.0, "2026-03-01"),
             _fill(2, "e2.01", "SLD", 4, 110.0),
             _fill(2, "e2.02", "SLD", 4, 111.0),  # a correction of e2: replaces it
             _fill(2, "e2.01", "SLD", 4, 110.0),  # the old revision again (replayed): ignored
             _fill(3, "e3.01", "SLD", 5, 105.0),
             _fill(9, "e9.01", "BOT", 7, 1.0)]  # an order no strategy caused
    fees = [{"correlation_id": "proposal-1", "payload": {"exec_id": "e1.01", "commission": 1.0}},
            {"correlation_id": "proposal-2", "payload": {"exec_id": "e2.02", "commission": 0.5}}]
    got = attribute(PROPS, fills, fees)
    assert [(f.strategy, f.exec_id, f.signed, f.price, f.commission) for f in got] == [
        ("a", "e1.01", 10, 100.0, 1.0), ("a", "e2.02", -4, 111.0, 0.5), ("b", "e3.01", -5, 105.0, 0.0)]
    assert [r["exec_id"] for r in fills_rows(got)] == ["e3.01", "e2.02", "e1.01"]  # newest first


def test_pnl_equals_the_sum_of_its_fills() -> None:
    fills = attribute(PROPS, [_fill(1, "e1", "BOT", 10, 100.0, "2026-03-01"), _fill(2, "e2", "SLD", 4, 111.0)],
                      [{"correlation_id": "proposal-1", "payload": {"exec_id": "e1", "commission": 1.0}}])
    a = [f for f in fills if f.strategy == "a"]
    mark = 120.0
    got = strategy_pnl(a, {10: mark}, TODAY)
    by_hand = sum(-f.signed * f.price - f.commission for f in a) + sum(f.signed for f in a) * mark
    assert got["pnl"] == by_hand == -1000 + 444 + 6 * 120 - 1.0
    assert got["positions"] == {"10": 6.0} and got["fills"] == 2
    assert got["today_pnl"] == -4 * (120.0 - 111.0)  # only today's fill; yesterday's position is in pnl
    # no mark: the last fill price marks it
    assert strategy_pnl(a, {}, TODAY)["pnl"] == -1000 + 444 + 6 * 111.0 - 1.0
    assert strategy_pnl([], {}, TODAY) == {"pnl": 0.0, "today_pnl": 0.0, "commission": 0.0, "fills": 0,
                                           "positions": {}, "by_conid": []}
