"""Issue 14, pure parts: time in force, amounts converted at the order's own price, the executioner's what-if
preview, propose refusing what approval would refuse, transient refusals released to PENDING, executed fills on
the proposal, and risk settings validated with the config's own bounds and written back keeping comments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from trader.config import TradingFiltersConfig
from trader.data.proposals import GroupStore, ProposalStore
from trader.data.store import state_store
from trader.errors import ConfigError, InvalidProposal, RiskRejected
from trader.testing import RecordingBroker
from trader.trading.executioner import Executioner
from trader.trading.models import AccountSnapshot, Action, OrderType, Position
from trader.trading.orders import OrderRequest, order_problems
from trader.trading.pipeline_service import ProposalPipeline, is_transient
from trader.trading.proposals import ProposalState
from trader.trading.risk_gate import GateContext, RiskGate, RuleFailure
from trader.trading.risk_settings import edit_list, set_limit, write_settings


class Market:
    def __init__(self, positions=()):
        self.pos = list(positions)

    async def price(self, symbol, sec_type, exchange, currency):
        return 100.0

    def positions(self):
        return self.pos

    def account(self):
        return AccountSnapshot(net_liquidation=1_000_000.0)


def setup(tmp_path, positions=(), in_window=0, filters=None, events=None):
    broker = RecordingBroker(price=100.0)
    state = {"in_window": in_window}

    async def context(req, contract, price):
        return GateContext(account=AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0),
                           positions=tuple(positions), now=datetime.now(UTC), open_orders=0,
                           orders_in_window=state["in_window"], regular_open=True, extended_open=True,
                           market_price=price)

    async def audit(*a, **k):
        pass

    ex = Executioner(RiskGate(filters or TradingFiltersConfig()), broker, context, audit)
    store = state_store(tmp_path)
    pipe = ProposalPipeline(ProposalStore(store), GroupStore(store), ex.submit, Market(positions),
                            lambda kind, cid: (events or {}).get((kind, cid), []), preview=ex.preview)
    return pipe, ex, broker, state


def run(coro):
    return asyncio.run(coro)


def test_tif_is_validated_and_an_ioc_bracket_refused():
    assert order_problems(OrderRequest("AAPL", Action.BUY, quantity=1, tif="GTC")) == []
    assert any("time in force" in p for p in order_problems(OrderRequest("AAPL", Action.BUY, quantity=1, tif="FOK")))
    ioc = OrderRequest("AAPL", Action.BUY, quantity=1, tif="IOC", take_profit=110, stop_loss=90)
    assert any("IOC" in p for p in order_problems(ioc, market_price=100))
    assert OrderRequest("AAPL", Action.BUY, quantity=1, tif="GTC").exit_tif == "GTC"
    assert OrderRequest("AAPL", Action.BUY, quantity=1, tif="IOC").exit_tif == "DAY"


def test_an_amount_converts_at_the_limit_price_not_the_market(tmp_path):
    _, ex, broker, _ = setup(tmp_path)
    req = OrderRequest("AAPL", Action.BUY, amount=2000, order_type=OrderType.LIMIT, limit_price=190)
    out = run(ex.submit(req))
    assert out["quantity"] == 10 and broker.placed[-1].quantity == 10  # 2000 // 190, not 2000 // 100
    market = run(ex.submit(OrderRequest("AAPL", Action.BUY, amount=2000)))
    assert market["quantity"] == 20


def test_preview_sends_nothing_and_reports_the_gate(tmp_path):
    _, ex, broker, _ = setup(tmp_path)
    what = run(ex.preview(OrderRequest("AAPL", Action.BUY, amount=5_000_000)))
    assert broker.placed == [] and what["quantity"] == 50_000
    rules = {f["rule"] for f in what["decision"]["failures"]}
    assert {"position_value", "position_pct_nlv"} <= rules


def test_propose_refuses_what_approval_would_refuse(tmp_path):
    pipe, _, _, _ = setup(tmp_path, positions=[Position("IBM", 100, 100.0, 100.0)])
    with pytest.raises(InvalidProposal, match="--short"):
        run(pipe.propose("IBM", "SELL", quantity=500))  # 100 held
    with pytest.raises(InvalidProposal, match="--short"):
        run(pipe.propose("MSFT", "SELL", quantity=5))  # nothing held
    assert run(pipe.propose("MSFT", "SELL", quantity=5, allow_short=True))["allow_short"] is True
    assert run(pipe.propose("IBM", "SELL", quantity=100))["state"] == "PENDING"
    with pytest.raises(InvalidProposal, match="bracket cannot have a trailing-stop entry"):
        run(pipe.propose("AAPL", "BUY", quantity=1, trailing_stop_pct=3, take_profit=110, stop_loss=90))
    trail = run(pipe.propose("TSLA", "SELL", amount=3000, trailing_stop_pct=3, allow_short=True))
    assert trail["order_type"] == "TRAIL" and trail["risk_preview"]["gate"]["quantity"] == 30


def test_trailing_proposal_executes_and_records_its_fills(tmp_path):
    pipe, _, broker, _ = setup(tmp_path)
    p = run(pipe.propose("TSLA", "SELL", amount=3000, trailing_stop_pct=3, allow_short=True, tif="GTC"))
    done = run(pipe.approve(p["id"]))
    sent = broker.placed[-1]
    assert sent.order_type is OrderType.TRAILING_STOP and sent.trailing_percent == 3 and sent.tif == "GTC"
    assert done["state"] == "EXECUTED" and done["executed_quantity"] == 30
    assert done["filled_quantity"] == 30 and done["avg_fill_price"] == 100.0


def test_a_transient_refusal_leaves_the_proposal_pending(tmp_path):
    pipe, _, broker, state = setup(tmp_path, in_window=30)  # the order-rate window is full
    p = run(pipe.propose("AAPL", "BUY", quantity=1))
    assert any("order_rate" in w and "transient" in w for w in p["risk_preview"]["warnings"])
    with pytest.raises(RiskRejected, match="still PENDING"):
        run(pipe.approve(p["id"]))
    shown = pipe.show(p["id"])
    assert shown["state"] == "PENDING" and "orders in the last" in shown["state_reason"] and broker.placed == []
    state["in_window"] = 0  # the window slid
    assert run(pipe.approve(p["id"]))["state"] == "EXECUTED"


def test_recovery_counts_submissions_of_a_released_proposal(tmp_path):
    events: dict = {}
    pipe, _, _, _ = setup(tmp_path, events=events)
    a = run(pipe.propose("AAPL", "BUY", quantity=1))
    b = run(pipe.propose("MSFT", "BUY", quantity=1))
    for p in (a, b):
        pipe.proposals.transition(p["id"], ProposalState.APPROVED, "approved")
    # a: released once (its deadline passed), then approved again and sent when the service died: may be live
    events[("order_submitted", "proposal-1")] = [{}, {}]
    events[("order_expired", "proposal-1")] = [{"message": "deadline"}]
    # b: its only submission expired: provably never sent
    events[("order_submitted", "proposal-2")] = [{}]
    events[("order_expired", "proposal-2")] = [{"message": "deadline"}]
    settled = {p["id"]: p["state"] for p in pipe.recover_unsent()}
    assert settled == {b["id"]: "FAILED"} and pipe.show(a["id"])["state"] == "APPROVED"


def test_a_lasting_refusal_fails_the_proposal(tmp_path):
    pipe, _, _, _ = setup(tmp_path, filters=TradingFiltersConfig(symbol_denylist=["AAPL"]))
    p = run(pipe.propose("AAPL", "BUY", quantity=1))
    with pytest.raises(RiskRejected):
        run(pipe.approve(p["id"]))
    assert pipe.show(p["id"])["state"] == "FAILED"


def test_is_transient():
    class Decision:
        def __init__(self, *rules):
            self.failures = [RuleFailure(r, "x") for r in rules]

    assert is_transient(RiskRejected("x", Decision("order_rate", "market_hours")))
    assert not is_transient(RiskRejected("x", Decision("order_rate", "position_value")))
    assert not is_transient(RiskRejected("no price"))
    assert not is_transient(ValueError("x"))


def test_risk_settings_are_validated_and_written_keeping_comments(tmp_path):
    cfg = TradingFiltersConfig()
    assert set_limit(cfg, "max_orders_per_window", "5").max_orders_per_window == 5
    assert set_limit(cfg, "allow_extended_hours", "true").allow_extended_hours is True
    for key, value in (("max_position_pct_nlv", "500"), ("max_open_orders", "-1"), ("nope", "1"),
                       ("symbol_denylist", "X"), ("max_daily_loss_usd", "lots")):
        with pytest.raises(ConfigError):
            set_limit(cfg, key, value)
    new = edit_list(cfg, "symbol_denylist", "add", ["amd", "AMD", "tsla"])
    assert new.symbol_denylist == ["AMD", "TSLA"]
    assert edit_list(new, "symbol_denylist", "remove", ["amd"]).symbol_denylist == ["TSLA"]
    path = tmp_path / "trading_filters.yaml"
    path.write_text("# limits\nmax_orders_per_window: 30   # per window\nsymbol_denylist: []\n")
    write_settings(path, set_limit(new, "max_orders_per_window", "7"), ["max_orders_per_window", "symbol_denylist",
                                                                         "max_open_orders"])
    text = path.read_text()
    assert "max_orders_per_window: 7   # per window" in text and 'symbol_denylist: ["AMD", "TSLA"]' in text
    assert text.startswith("# limits\n") and "max_open_orders: 20" in text
    from trader.config import load_section

    loaded = load_section("trading_filters.yaml", TradingFiltersConfig, path=path)
    assert loaded.max_orders_per_window == 7 and loaded.symbol_denylist == ["AMD", "TSLA"]
