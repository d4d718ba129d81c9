"""Compact snapshot (token ceilings), diff (each kind of change), session summary."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from trader.config import PositionSizingConfig, TradingFiltersConfig
from trader.messaging.codec import packb, unpackb
from trader.trading.models import AccountSnapshot, Action, Position
from trader.trading.snapshot import (
    DiffThresholds,
    OrderSummary,
    estimate_tokens,
    order_state,
    portfolio_diff,
    portfolio_snapshot,
    session_summary,
)

T0 = datetime(2025, 3, 3, 14, 30, 12, tzinfo=UTC)
T1 = T0 + timedelta(minutes=15)
SYMBOLS = [
    "AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "BRK.B", "JPM", "V", "UNH", "XOM", "JNJ", "WMT",
    "PG", "MA", "HD", "CVX", "LLY", "AVGO", "KO", "PEP", "COST", "MRK", "ABBV", "ADBE", "CRM", "NFLX", "AMD",
    "INTC", "ORCL", "CSCO", "TMO", "ACN", "MCD", "ABT", "DHR", "NKE", "TXN", "NEE", "PM", "UPS", "RTX", "HON",
    "QCOM", "LOW", "SPGI", "IBM", "CAT", "GS",
]
ACCOUNT = AccountSnapshot(net_liquidation=1_234_567.89, cash=234_567.12, daily_pnl=-4_321.5)


def book(n: int, seed: int = 1) -> list[Position]:
    """A realistic-looking book with awkward numbers (long and short, big values, cents everywhere)."""
    rng = random.Random(seed)
    out = []
    for sym in SYMBOLS[:n]:
        qty = rng.choice([1, -1]) * rng.randint(10, 900)
        px = rng.uniform(20, 900)
        cost = px * rng.uniform(0.7, 1.3)
        out.append(Position(sym, qty, cost, px, unrealized_pnl=qty * (px - cost),
                            daily_pnl=qty * px * rng.uniform(-0.04, 0.04)))
    return out


def orders(n: int = 3) -> list[OrderSummary]:
    return [OrderSummary(1000 + i, SYMBOLS[i], Action.BUY, 100, "LMT", 123.45, "Submitted") for i in range(n)]


# --------------------------------------------------------------------------- snapshot
def test_snapshot_content():
    positions = [Position("AAPL", 100, 150.0, 190.123, unrealized_pnl=4012.3, daily_pnl=250.0),
                 Position("TSLA", -10, 200.0, 180.0, unrealized_pnl=200.0, daily_pnl=-30.0),
                 Position("FLAT", 0, 1.0, 1.0)]
    s = portfolio_snapshot(ACCOUNT, positions, orders(1), T0)
    assert s["t"] == "2025-03-03T14:30Z"
    assert (s["nlv"], s["cash"], s["day"], s["n"]) == (1234568, 234567, -4322, 2)
    assert s["day%"] == pytest.approx(-4321.5 / (1_234_567.89 + 4321.5) * 100, abs=0.01)
    assert s["upnl"] == 4212
    assert s["cols"] == ["sym", "qty", "px", "val", "upnl"]
    assert s["pos"] == [["AAPL", 100, 190.12, 19012, 4012], ["TSLA", -10, 180, -1800, 200]]
    assert s["mv"] == [["AAPL", 250, 1.3], ["TSLA", -30, -1.7]]  # a P&L %: -30 on 1,770
    assert s["ord"] == [[1000, "AAPL", "BUY", 100, "LMT", 123.45, "open", 0]]
    json.dumps(s)  # JSON-ready as is


def test_snapshot_with_day_column_and_truncation():
    s = portfolio_snapshot(ACCOUNT, book(30), [], T0, max_positions=10, with_day=True)
    assert s["cols"][-1] == "day" and all(len(r) == 6 for r in s["pos"])
    assert len(s["pos"]) == 10 and s["more"]["n"] == 20 and s["n"] == 30
    values = [abs(r[3]) for r in s["pos"]]
    assert values == sorted(values, reverse=True)


# Ceilings on the conservative (high) estimate: `estimate_tokens` is a floor by construction, so a ceiling
# asserted on it proved nothing about what the agent pays (issue 14).
@pytest.mark.parametrize(("n", "ceiling"), [(20, 800), (50, 1400)])
def test_token_ceiling(n, ceiling):
    from trader.tools.tokens import conservative_tokens

    s = portfolio_snapshot(ACCOUNT, book(n), orders(3), T0)
    high, floor = conservative_tokens(s), estimate_tokens(s)
    assert floor <= high  # the floor estimator never says more than the conservative one
    assert high <= ceiling, f"{n} positions: ~{high} tokens (conservative estimate)"


def test_truncated_fifty_stays_within_twenty_position_budget():
    from trader.tools.tokens import conservative_tokens

    s = portfolio_snapshot(ACCOUNT, book(50), orders(3), T0, max_positions=20)
    assert conservative_tokens(s) <= 800


def test_estimate_tokens_counts_pretokens():
    assert estimate_tokens("abcdefgh") == 2  # characters / 4
    assert estimate_tokens([123456, 7]) == 6  # [ 123 456 , 7 ] → numbers split into 3-digit groups


def test_order_state():
    assert order_state("Filled") == "filled"
    assert order_state("Submitted", filled=100, quantity=100) == "filled"
    assert order_state("Submitted", filled=10, quantity=100) == "partial"
    assert order_state("ApiCancelled") == "cancelled"
    assert order_state("PreSubmitted") == "open"
    assert order_state("Inactive") == "inactive"
    o = orders(1)[0]
    assert unpackb(packb(o)) == o


# --------------------------------------------------------------------------- diff
def snap(positions, ords=(), account=ACCOUNT, t=T0):
    return portfolio_snapshot(account, list(positions), list(ords), t)


BASE = [Position("AAPL", 100, 150.0, 190.0, unrealized_pnl=4000.0),
        Position("MSFT", 50, 300.0, 400.0, unrealized_pnl=5000.0)]


def test_no_change_is_tiny():
    d = portfolio_diff(snap(BASE, orders(2)), snap(BASE, orders(2), t=T1))
    assert d == {"changed": False, "msg": "nothing changed", "since": "2025-03-03T14:30Z"}
    assert estimate_tokens(d) <= 25


def test_new_and_closed_positions():
    new = Position("NVDA", 10, 100.0, 120.0, unrealized_pnl=200.0)
    d = portfolio_diff(snap(BASE), snap([BASE[0], new], t=T1))
    assert d["changed"] is True and d["t"] == "2025-03-03T14:45Z"
    assert d["new"] == [["NVDA", 10, 120, 1200]]
    assert d["closed"] == [["MSFT", 50]]
    assert "qty" not in d and "pnl" not in d


def test_quantity_change():
    d = portfolio_diff(snap(BASE), snap([replace(BASE[0], quantity=150), BASE[1]]))
    assert d["qty"] == [["AAPL", 100, 150]]


def test_pnl_move_over_threshold_only():
    small = portfolio_diff(snap(BASE), snap([replace(BASE[0], unrealized_pnl=4100.0), BASE[1]]))
    assert small["changed"] is False  # $100 < $250
    big = portfolio_diff(snap(BASE), snap([replace(BASE[0], unrealized_pnl=4400.0), BASE[1]]))
    assert big["pnl"] == [["AAPL", 4000, 4400]]
    # $400 is only 2.1% of the 19,000 position: a 5% threshold hides it.
    hidden = portfolio_diff(snap(BASE), snap([replace(BASE[0], unrealized_pnl=4400.0), BASE[1]]),
                            DiffThresholds(pnl_pct=5.0))
    assert hidden["changed"] is False


def test_nlv_move_over_threshold():
    moved = replace(ACCOUNT, net_liquidation=ACCOUNT.net_liquidation * 1.01, daily_pnl=8000.0)
    d = portfolio_diff(snap(BASE), snap(BASE, account=moved))
    assert d["nlv"] == [1234568, 1246914] and d["day"] == [-4322, 8000]
    tiny = replace(ACCOUNT, net_liquidation=ACCOUNT.net_liquidation + 100)
    assert portfolio_diff(snap(BASE), snap(BASE, account=tiny))["changed"] is False


def test_orders_filled_cancelled_placed_gone():
    before = orders(4)
    after = [
        replace(before[0], status="Filled", filled=100),
        replace(before[1], status="Cancelled"),
        before[2],  # unchanged
        # before[3] disappeared from the broker's list
        OrderSummary(2000, "NVDA", Action.SELL, 5, "MKT", None, "PreSubmitted"),
    ]
    d = portfolio_diff(snap(BASE, before), snap(BASE, after))
    assert d["filled"] == [[1000, "AAPL", "BUY", 100]]
    assert d["cancelled"] == [[1001, "MSFT"]]
    assert d["placed"] == [[2000, "NVDA", "SELL", 5]]
    assert d["gone"] == [1003]
    # A fill already reported is not reported again.
    assert portfolio_diff(snap(BASE, after), snap(BASE, after))["changed"] is False


def test_diff_of_truncated_snapshot_reports_no_false_closes():
    prev = portfolio_snapshot(ACCOUNT, book(30), [], T0)
    curr = portfolio_snapshot(ACCOUNT, book(30), [], T1, max_positions=10)
    assert "closed" not in portfolio_diff(prev, curr)


# --------------------------------------------------------------------------- session
def test_session_summary():
    sizing = PositionSizingConfig()
    filters = TradingFiltersConfig(max_daily_loss_usd=5000.0, max_open_orders=20, max_position_value_usd=50_000.0)
    account = AccountSnapshot(net_liquidation=200_000.0, cash=50_000.0, daily_pnl=-1_200.0)
    ords = orders(3) + [OrderSummary(9, "X", Action.BUY, 1, status="Filled", filled=1)]
    s = session_summary(sizing, filters, account, ords)
    assert s["daily_loss"] == {"limit": 5000, "pnl": -1200, "used": 1200, "remaining": 3800}
    assert s["open_orders"] == {"limit": 20, "open": 3, "remaining": 17}
    assert s["max_position_usd"] == 20000  # the gate's 10% of 200,000 beats its $50,000
    assert s["sizing"]["method"] == "atr" and s["sizing"]["base_usd"] == 5000
    json.dumps(s)


def test_session_summary_gains_and_unknowns():
    sizing, filters = PositionSizingConfig(), TradingFiltersConfig()
    up = session_summary(sizing, filters, AccountSnapshot(1e6, daily_pnl=700.0), 25)
    assert up["daily_loss"]["remaining"] == 5000 and up["open_orders"]["remaining"] == 0
    # the gate's limit, not the sizer's $25,000 cap (issue 14: session said 25,000 while the gate allowed 50,000)
    assert up["max_position_usd"] == 50000 and up["sizing"]["max_usd"] == 25000
    assert up["order_rate"] == {"limit": 30, "window_seconds": 300, "in_window": None, "remaining": None}
    rate = session_summary(sizing, filters, AccountSnapshot(1e6), 0, orders_in_window=28)["order_rate"]
    assert rate["in_window"] == 28 and rate["remaining"] == 2
    unknown = session_summary(sizing, filters, AccountSnapshot(None), [])
    assert unknown["daily_loss"]["remaining"] is None and unknown["max_position_usd"] is None


# --------------------------------------------------------------------------- the idle MONITOR cycle (issue 14)
# What `status` collects with every service up (the compact view keeps a few of these keys).
STATUS = {
    "all_up": True, "all_ready": True,
    "services": [
        {"service": "trader_service", "up": True, "ready": True, "latency_ms": 6.75, "version": "0.1.0",
         "pid": 22099, "uptime_seconds": 115.968, "details": {
             "account": {"net_liquidation": 999971.8, "cash": 945214.7, "daily_pnl": -28.9,
                         "unrealized_pnl": -28.9, "realized_pnl": 0.0}, "trading_halted_for": None}},
        {"service": "data_service", "up": True, "ready": True, "latency_ms": 36.58, "version": "0.1.0",
         "pid": 22100, "uptime_seconds": 117.125, "details": {"data_dir": "/home/me/.local/share/mmr/data",
                                                              "broker_connected": False, "data_ib_client_id": 2,
                                                              "jobs_running": 0}},
        {"service": "strategy_service", "up": True, "ready": True, "latency_ms": 40.32, "version": "0.1.0",
         "pid": 22101, "uptime_seconds": 117.128, "details": {"bus_topics": 0, "strategies": {},
                                                              "kill_switch": False, "live_account": False}},
    ],
    "broker": {"kind": "sim", "state": "connected", "ready": True, "reconciled": True, "upstream_lost": False,
               "client_id": 1, "connected_for_s": 114.7, "disconnected_for_s": None, "alarm": False,
               "reconnects": 0, "last_error": None, "recent_errors": 3},
}


def stored_proposals(n: int) -> list[dict]:
    """Rows as trader_service lists them (every field), newest first."""
    return [{"id": 100 - i, "symbol": SYMBOLS[i % 20], "action": "BUY", "quantity": 12.0, "amount_usd": None,
             "order_type": "LMT", "limit_price": 187.25, "confidence": 0.65, "group": "tech", "state": "PENDING",
             "state_reason": "", "created_at": (T0 - timedelta(minutes=i)).isoformat(),
             "expires_at": (T0 + timedelta(minutes=60 - i)).isoformat(), "order_ids": [], "reasoning": "x" * 200,
             "sizing": {"breakdown": "base $5,000 × 1.0 risk"}, "risk_preview": {"warnings": []}}
            for i in range(n)]


def test_idle_monitor_cycle_fits_the_budget():
    """status, pdiff, session, prisk and proposals --brief, in their default views, at 20 positions (a
    concentrated book: many warnings) stay within 1,500 tokens on the conservative estimate."""
    from trader.cli.proposals import brief_row
    from trader.cli.status import compact_status
    from trader.tools.tokens import conservative_tokens
    from trader.trading.portfolio_risk import portfolio_risk, risk_brief
    from trader.trading.snapshot import session_brief

    positions = book(20)
    snapshot = portfolio_snapshot(ACCOUNT, positions, orders(3), T0)
    rng = random.Random(3)
    factor = [rng.gauss(0, 0.01) for _ in range(60)]
    returns = {p.symbol: [f + rng.gauss(0, 0.002) for f in factor] for p in positions[:8]}  # one big cluster
    report = portfolio_risk(positions, ACCOUNT.net_liquidation, (), returns).to_dict()
    assert len(report["warnings"]) > 10 and report["clusters"]  # the stress case: truncation is exercised
    cycle = {
        "status": compact_status(STATUS),
        "pdiff": portfolio_diff(snapshot, snapshot),
        "session": session_brief(session_summary(PositionSizingConfig(), TradingFiltersConfig(), ACCOUNT, 3, 4)),
        "prisk": risk_brief(report),
        "proposals --brief": [brief_row(r, T0) for r in stored_proposals(100)[:5]],  # the default --limit
    }
    tokens = {name: conservative_tokens(doc) for name, doc in cycle.items()}
    assert sum(tokens.values()) <= 1500, tokens
    assert conservative_tokens(report) > tokens["prisk"] * 2  # the full report (--detail) is what was trimmed


def test_default_views_keep_what_the_agent_acts_on():
    from trader.cli.proposals import brief_row
    from trader.cli.status import compact_status
    from trader.trading.portfolio_risk import portfolio_risk, risk_brief
    from trader.trading.snapshot import session_brief

    st = compact_status(STATUS)
    trader = st["services"][0]
    assert trader == {"service": "trader_service", "up": True, "ready": True, "latency_ms": 6.75, "pid": 22099,
                      "details": {"trading_halted_for": None}}
    assert st["services"][1]["details"] == {"broker_connected": False, "jobs_running": 0}
    assert st["broker"] == {"kind": "sim", "state": "connected", "ready": True, "reconciled": True, "alarm": False,
                            "recent_errors": 3}
    s = session_brief(session_summary(PositionSizingConfig(), TradingFiltersConfig(),
                                      AccountSnapshot(1e6, daily_pnl=-1000.0), 5, orders_in_window=28))
    assert s["daily_loss"] == {"limit": 5000, "remaining": 4000} and s["open_orders"]["remaining"] == 15
    assert s["order_rate"]["remaining"] == 2 and s["max_position_usd"] == 50000 and s["sizing"]["max_usd"] == 25000
    report = portfolio_risk(book(20), ACCOUNT.net_liquidation).to_dict()
    r = risk_brief(report, top=3, max_warnings=4)
    assert r["warnings"] == list(report["warnings"][:4]) and r["warnings_more"] == len(report["warnings"]) - 4
    assert [t[0] for t in r["top"]] == [p["symbol"] for p in report["positions"][:3]] and r["n"] == 20
    row = brief_row(stored_proposals(3)[2], T0)
    assert row == {"id": 98, "symbol": "NVDA", "action": "BUY", "quantity": 12, "state": "PENDING",
                   "confidence": 0.65, "age_min": 2}
    done = brief_row({"id": 1, "symbol": "X", "state": "EXECUTED", "state_reason": "filled", "filled_quantity": 3.0,
                      "avg_fill_price": 10.5, "created_at": T0.isoformat()}, T0 + timedelta(hours=1))
    assert done["filled_quantity"] == 3 and done["avg_fill_price"] == 10.5 and done["age_min"] == 60
