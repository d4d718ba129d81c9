"""Intent → trader_service calls (trader.nl.orders) and the pipeline's dry run behind `mmr nl TEXT`'s preview:
the same checks and gate what-if as propose, nothing stored (issue 18)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from trader.config import TradingFiltersConfig
from trader.data.proposals import GroupStore, ProposalStore
from trader.data.store import state_store
from trader.errors import InvalidProposal
from trader.nl.orders import NotProposable, exchange_for, proposal_call, request_id_for, selections
from trader.nl.parser import parse
from trader.nl.symbols import FUTURES_EXCHANGES, FUTURES_ROOTS
from trader.testing import RecordingBroker
from trader.trading.executioner import Executioner
from trader.trading.intents import check_request_id
from trader.trading.models import AccountSnapshot
from trader.trading.pipeline_service import ProposalPipeline
from trader.trading.risk_gate import GateContext, RiskGate

REF = date(2026, 12, 7)


def test_every_futures_root_has_its_exchange():
    assert set(FUTURES_EXCHANGES) == set(FUTURES_ROOTS)
    assert exchange_for(parse("buy 1 CL", REF)) == "NYMEX" and exchange_for(parse("buy 1 ZN", REF)) == "CBOT"
    assert exchange_for(parse("buy 1 GC 2500c dec 18", REF)) == "COMEX" and exchange_for(parse("buy 1 SPY", REF)) \
        == "SMART"


def test_selections_per_kind():
    assert selections(parse("buy 1 ES", REF)) == [{"symbol": "ES", "sec_type": "FUT", "exchange": "CME",
                                                   "currency": "USD"}]  # no month: the front month
    assert selections(parse("buy 1 ES march", REF))[0]["expiry"] == "202703"
    (stk,) = selections(parse("buy 5 AAPL", REF))
    assert stk == {"symbol": "AAPL", "sec_type": "STK", "exchange": "SMART", "currency": "USD"}
    legs = selections(parse("sell 3 ES put spreads at 5300/5200 for 20 points friday", REF))
    assert [(s["strike"], s["right"], s["expiry"], s["sec_type"]) for s in legs] == [
        (5200, "P", "20261211", "FOP"), (5300, "P", "20261211", "FOP")]


def test_proposal_call_for_outrights_and_what_it_refuses():
    opt = {"sec_type": "OPT", "local_symbol": "AAPL  261211C00250000", "exchange": "SMART", "currency": "USD"}
    args, kw = proposal_call(parse("sell 2 AAPL 250c fri for 3.5 gtc", REF), [opt], "sell 2 AAPL 250c fri …")
    assert args == ("AAPL  261211C00250000", "SELL")
    assert (kw["quantity"], kw["limit_price"], kw["tif"], kw["allow_short"]) == (2.0, 3.5, "GTC", True)
    assert kw["reasoning"].startswith("nl: sell 2 AAPL") and len(kw["reasoning"]) < 1000
    stk = {"sec_type": "STK", "symbol": "AAPL", "local_symbol": "AAPL"}
    args, kw = proposal_call(parse("sell 10 AAPL", REF), [stk], "sell 10 AAPL")
    assert args == ("AAPL", "SELL") and kw["limit_price"] is None and kw["allow_short"] is False
    args, kw = proposal_call(parse("sell 1 ES stop 5200 gtc", REF), [{"sec_type": "FUT", "local_symbol": "ESZ6"}],
                             "x")
    assert args == ("ESZ6", "SELL") and (kw["stop_price"], kw["limit_price"], kw["tif"]) == (5200, None, "GTC")


def test_request_id_is_stable_per_text_and_day_and_valid():
    a = request_id_for("Buy 1 ES ", "2026-12-07")
    assert a == request_id_for("buy 1 es", "2026-12-07") != request_id_for("buy 1 es", "2026-12-08")
    assert check_request_id(a) == a


class _Market:
    async def price(self, symbol, sec_type, exchange, currency):
        return 100.0

    def positions(self):
        return []

    def account(self):
        return AccountSnapshot(net_liquidation=1_000_000.0)


def _pipeline(tmp_path):
    """A proposal pipeline over a recording broker, a default risk gate and a flat $1M account."""
    broker = RecordingBroker()

    async def context(req, contract, price):
        return GateContext(account=AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0), positions=(),
                           now=datetime.now(UTC), open_orders=0, orders_in_window=0, regular_open=True,
                           extended_open=True, market_price=price)

    async def record(kind, payload, *, correlation_id=None, source=None):
        pass

    ex = Executioner(RiskGate(TradingFiltersConfig()), broker, context, record)
    store = state_store(tmp_path)
    return broker, ProposalPipeline(ProposalStore(store), GroupStore(store), ex.submit, _Market(),
                                    lambda kind, cid: [], preview=ex.preview)


def test_dry_run_previews_the_gate_and_stores_nothing(tmp_path):
    broker, pipe = _pipeline(tmp_path)
    out = asyncio.run(pipe.propose("AAPL", "BUY", quantity=10, limit_price=100, request_id="nl-x", dry_run=True))
    assert out["state"] == "PREVIEW" and out["id"] == 0 and out["risk_preview"]["gate"]["allowed"] is True
    assert pipe.list(all_states=True) == [] and broker.placed == []
    # a stored proposal with the same request id does not answer a dry run: the preview is of this order
    stored = asyncio.run(pipe.propose("AAPL", "BUY", quantity=10, limit_price=100, request_id="nl-x"))
    again = asyncio.run(pipe.propose("AAPL", "BUY", quantity=20, limit_price=100, request_id="nl-x", dry_run=True))
    assert stored["state"] == "PENDING" and again["state"] == "PREVIEW" and again["quantity"] == 20
    assert len(pipe.list(all_states=True)) == 1
    with pytest.raises(InvalidProposal, match="exceeds"):  # what approval would refuse is refused here too
        asyncio.run(pipe.propose("AAPL", "SELL", quantity=5, dry_run=True))


def test_a_stop_proposal_is_approved_as_a_stop_order(tmp_path):
    broker, pipe = _pipeline(tmp_path)
    p = asyncio.run(pipe.propose("MES", "BUY", quantity=1, stop_price=105, sec_type="FUT", exchange="CME"))
    assert (p["order_type"], p["stop_price"], p["limit_price"]) == ("STP", 105, None)
    assert p["risk_preview"]["notional"] == 105 and p["risk_preview"]["gate"]["allowed"] is True  # at its trigger
    assert asyncio.run(pipe.approve(p["id"]))["state"] == "EXECUTED"
    (req,) = broker.placed
    assert (req.order_type.value, req.stop_price, req.limit_price) == ("STP", 105, None)
    with pytest.raises(InvalidProposal, match="STP order takes no limit price"):
        asyncio.run(pipe.propose("MES", "BUY", quantity=1, stop_price=105, limit_price=104))


def _fop(strike: float, right: str, con_id: int) -> dict:
    return {"con_id": con_id, "symbol": "ES", "sec_type": "FOP", "exchange": "CME", "currency": "USD",
            "local_symbol": f"ESZ6 {right}{strike:g}", "multiplier": "50", "last_trade_date": "20261211",
            "strike": strike, "right": right}


class _RecordingApp:
    """Just enough of AppContext for the combo API: records the one RPC it makes."""

    class config:  # noqa: N801 - mirrors AppContext.config
        rpc_timeout = 5.0

    def __init__(self):
        self.calls = []

    def call(self, service, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        return {}


@pytest.mark.parametrize(("text", "bought"), [
    ("sell 3 ES put spreads at 5300/5200 for 20 points friday", 5300),  # credit put spread: sell the debit one
    ("buy 2 ES 5200/5300 put spread fri for 30", 5300),
    ("buy 1 ES call spread 5300/5200 fri for 40", 5200),
    ("sell 1 ES cs 5200/5300 fri 15 credit", 5200)])
def test_a_vertical_is_the_combo_apis_one_bag_proposal(text, bought):
    from trader.cli.combos import combo_order

    intent = parse(text, REF)
    right = intent["legs"][0]["right"]
    contracts = [_fop(5200, right, 11), _fop(5300, right, 12)]
    args, kw = proposal_call(intent, contracts, text)
    assert args == ("ES", intent["action"]) and kw["sec_type"] == "BAG" and kw["quantity"] == intent["quantity"]
    assert kw["limit_price"] == intent["limit_price"] and [leg["action"] for leg in kw["legs"]] in (
        ["BUY", "SELL"], ["SELL", "BUY"])
    assert next(leg["strike"] for leg in kw["legs"] if leg["action"] == "BUY") == bought  # written as bought
    # the preview's arguments are exactly the combo API's proposal (the --propose path)
    app = _RecordingApp()
    combo_order(app, *args, kw["legs"], quantity=kw["quantity"], limit=kw["limit_price"], propose=True,
                reasoning=kw["reasoning"], tif=kw["tif"], currency=kw["currency"], request_id="nl-1")
    ((method, c_args, c_kw),) = app.calls
    assert method == "propose" and c_args == args
    assert {k: v for k, v in c_kw.items() if k not in ("timeout", "request_id", "group")} == kw


def test_a_spread_needs_a_net_limit_and_matching_contracts():
    intent = parse("buy 1 ES call spread 5300/5200 fri", REF)
    with pytest.raises(NotProposable, match="net limit price"):
        proposal_call(intent, [_fop(5200, "C", 11), _fop(5300, "C", 12)], "x")
    priced = parse("buy 1 ES call spread 5300/5200 fri for 40", REF)
    with pytest.raises(NotProposable, match="vertical"):
        proposal_call(priced, [_fop(5200, "C", 11), _fop(5300, "P", 12)], "x")


def test_the_preview_is_a_read_the_proposal_is_not():
    from trader.trading.roles import rpc_allowed

    for role in ("proposer", "approver"):  # `nl TEXT` is a read command for every role, and so is its preview
        assert rpc_allowed("trader_service", role, "propose_preview")
    assert rpc_allowed("trader_service", "proposer", "propose")
    assert not rpc_allowed("trader_service", "approver", "propose")
