"""trader_service end to end on the simulated gateway: every order path passes the risk gate, and the event
store tells the whole story of a trade in order."""

from __future__ import annotations

import time

import pytest

from trader.errors import InvalidOrder, RiskRejected
from trader.testing import Platform, platform_env
from trader.trading.models import Action, OrderType
from trader.trading.orders import OrderRequest

FILTERS = """\
max_position_value_usd: 1000000.0
max_position_pct_nlv: 50.0
max_daily_loss_usd: 100000.0
max_open_orders: 50
max_orders_per_window: 200
order_window_seconds: 300
allow_extended_hours: true
symbol_denylist: [TSLA]
"""


@pytest.fixture(scope="module")
def trading(tmp_path_factory):
    home = tmp_path_factory.mktemp("mmr_trading")
    (home / "config").mkdir(parents=True)
    (home / "config" / "trading_filters.yaml").write_text(FILTERS)
    plat = Platform(home, platform_env(home), with_gateway=True)
    try:
        plat.start()
        plat.wait_broker_ready()
        client = plat.client("trader_service", timeout=10.0)
        yield plat, client
        client.close()
    finally:
        plat.stop()


def test_status_shows_connected_broker_and_account(trading):
    _, client = trading
    st = client.rpc().status()
    assert st.details["broker"]["state"] == "connected" and st.details["broker"]["reconciled"]
    assert st.details["account"]["net_liquidation"] > 0


def test_bracket_trade_story_in_event_store(trading):
    _, client = trading
    quote = client.rpc().snapshot("MSFT")
    px = quote["ask"]
    req = OrderRequest(symbol="MSFT", action=Action.BUY, quantity=5, order_type=OrderType.MARKET,
                       take_profit=round(px * 1.5, 2), stop_loss=round(px * 0.5, 2), correlation_id="story-1")
    result = client.rpc().place_order(req)
    assert len(result["order_ids"]) == 3
    deadline = time.monotonic() + 10
    while True:
        kinds = [e["kind"] for e in client.rpc().events(correlation_id="story-1")]
        if "fill" in kinds and "commission" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert kinds.index("order_requested") < kinds.index("order_submitted") < kinds.index("fill")
    assert kinds.index("fill") < kinds.index("commission")
    assert "order_placed" in kinds
    statuses = [e for e in client.rpc().events(correlation_id="story-1") if e["kind"] == "order_status"]
    assert len({e["payload"]["order_id"] for e in statuses}) == 3  # all three legs reported
    ids = [e["id"] for e in client.rpc().events(correlation_id="story-1")]
    assert ids == sorted(ids)


def test_fills_and_commissions_are_published_as_recorded(trading):
    """trader_service publishes each fill and commission event on ``fills.<kind>`` (strategy_service's caps follow
    them instead of reading the store on a bar close): the same correlation id and payload as the stored event."""
    from trader.messaging.pubsub import Subscriber
    from trader.trading.fills import FILL_TOPIC

    plat, client = trading
    pub = plat.client("trader_service").rpc().status().endpoints["pub"]
    with Subscriber(pub, [FILL_TOPIC], key=plat.client_key()) as sub:
        time.sleep(0.3)  # the subscription reaches the publisher (PubSub drops messages sent before it)
        client.rpc().place_order(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=3, correlation_id="pub-1"))
        got: dict[str, dict] = {}
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            msg = sub.recv(timeout=1.0)
            if msg is not None and msg[1]["correlation_id"] == "pub-1":
                got[msg[0]] = msg[1]
    assert set(got) == {f"{FILL_TOPIC}fill", f"{FILL_TOPIC}commission"}, got
    stored = {e["kind"]: e for e in client.rpc().events(correlation_id="pub-1") if e["kind"] in ("fill", "commission")}
    for kind in ("fill", "commission"):
        assert got[f"{FILL_TOPIC}{kind}"]["kind"] == kind
        assert got[f"{FILL_TOPIC}{kind}"]["payload"]["exec_id"] == stored[kind]["payload"]["exec_id"]
    assert got[f"{FILL_TOPIC}fill"]["payload"]["shares"] == 3


def test_gate_applies_on_every_order_path(trading):
    _, client = trading
    earlier = {e["id"] for e in client.rpc().events(kind="order_refused")}
    with pytest.raises(RiskRejected, match="TSLA"):
        client.rpc().place_order(OrderRequest(symbol="TSLA", action=Action.BUY, quantity=1))
    with pytest.raises(InvalidOrder, match="exceeds"):
        client.rpc().place_order(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=10_000))
    refused = [e for e in client.rpc().events(kind="order_refused") if e["id"] not in earlier]
    # both refusals of this test are audited too
    assert sorted((e["payload"]["symbol"], e["payload"]["action"]) for e in refused) == [
        ("AAPL", "SELL"), ("TSLA", "BUY")]


def test_reducing_order_passes_even_when_opening_is_refused(trading):
    _, client = trading
    client.rpc().place_order(OrderRequest(symbol="IBM", action=Action.BUY, quantity=3))
    res = client.rpc().close_position("IBM")
    assert res["reducing_quantity"] == 3 and res["opening_quantity"] == 0


def _admin(plat, **command):
    from trader.sim.faults import send_admin_command

    reply = send_admin_command(int(plat.env["SIM_ADMIN_PORT"]), command)
    assert reply.get("ok"), reply
    return reply["result"]


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_execution_correction_replaces_the_fill(trading):
    plat, client = trading
    res = client.rpc().place_order(OrderRequest(symbol="NVDA", action=Action.BUY, quantity=2))
    order_id = res["order_ids"][0]
    _wait(lambda: any(t["order_id"] == order_id for t in client.rpc().trades()))
    [first] = [t for t in client.rpc().trades() if t["order_id"] == order_id]
    new_exec = _admin(plat, fault="correct_execution", exec_id=first["exec_id"])
    _wait(lambda: any(t["exec_id"] == new_exec for t in client.rpc().trades()))
    mine = [t for t in client.rpc().trades() if t["order_id"] == order_id]
    assert [t["exec_id"] for t in mine] == [new_exec]  # replaced, not added
    assert sum(t["shares"] for t in mine) == 2


def test_late_commission_is_attached_when_it_comes(trading):
    plat, client = trading
    _admin(plat, fault="late_commission", seconds=1.0)
    try:
        res = client.rpc().place_order(OrderRequest(symbol="KO", action=Action.BUY, quantity=3))
        order_id = res["order_ids"][0]
        _wait(lambda: any(t["order_id"] == order_id for t in client.rpc().trades()))
        [fill] = [t for t in client.rpc().trades() if t["order_id"] == order_id]
        assert fill["commission"] is None  # the report has not arrived yet
        _wait(lambda: [t for t in client.rpc().trades() if t["order_id"] == order_id][0]["commission"])
        [fill] = [t for t in client.rpc().trades() if t["order_id"] == order_id]
        assert fill["commission"] > 0
    finally:
        _admin(plat, fault="late_commission", seconds=0)


def test_nightly_reset_silence_keeps_the_session_connected(trading):
    plat, client = trading
    _admin(plat, fault="nightly_reset", seconds=1.5)
    time.sleep(0.2)
    st = client.rpc().status().details["broker"]
    assert st["state"] == "connected" and st["ready"]  # market-data silence is not a disconnect
    # no fresh price during the silence: an opening market order fails closed instead of trading blind
    with pytest.raises(RiskRejected, match="no price"):
        client.rpc().place_order(OrderRequest(symbol="PEP", action=Action.BUY, quantity=1))
    time.sleep(1.5)
    res = client.rpc().place_order(OrderRequest(symbol="PEP", action=Action.BUY, quantity=1))
    assert res["order_ids"] and res["status"] == "Filled"


def test_resolved_contracts_are_cached_in_duckdb(trading):
    from trader.config import mmr_paths
    from trader.data.objects import ObjectStore
    from trader.data.store import state_store

    plat, client = trading
    assert client.rpc().resolve("AAPL")["con_id"] == 265598
    objects = ObjectStore(state_store(mmr_paths(plat.env).data_dir))
    _wait(lambda: any("AAPL" in k for k in objects.keys("contract:")))
    [key] = [k for k in objects.keys("contract:") if "AAPL" in k]
    assert objects.get(key)["con_id"] == 265598
