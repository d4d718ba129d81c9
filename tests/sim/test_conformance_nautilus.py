"""nautilus_trader's own IB adapter against the simulated gateway: a client we did not write, in its own venv.

A minimal nautilus TradingNode (its IB data and execution clients, no MMR code) runs as a subprocess in
.venv-nautilus (scripts/ensure_nautilus.sh: nautilus_trader 1.221.0 needs pandas < 3, MMR's venv has pandas 3)
executing tests/sim/nautilus_driver.py, which writes a JSON report of what the node saw. The gateway runs here,
on a free port, with a running clock so the market moves. Before the node starts, an ib_async client buys 7
AAPL, so the node must reconcile a position it did not open. The node then loads AAPL and EUR.USD, streams
quotes, fetches 30 one-minute AAPL bars, buys AAPL and EUR.USD at market (fills with commissions), cancels a
resting limit and a trailing stop, submits a bracket (market entry, take-profit, stop-loss) whose take-profit the
test fills by pinning the gateway's price over it (the stop-loss is cancelled), reports its P&L and shuts down,
leaving one more GTC limit working; a second node with the same client id must
find that order through its start-up reconciliation, cancel it, and shut down.
The test checks the report against the gateway's own records: orders, executions, commissions, positions,
account and P&L.
If the venv cannot be made the test FAILS with the reason (it never skips).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest
from ib_async import MarketOrder, Stock

from trader.sim import testkit
from trader.sim.clock import SimClock
from trader.testing import clean_env, run_async, until

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("nautilus_driver.py")
ENSURE = ROOT / "scripts" / "ensure_nautilus.sh"
CLIENT_ID = 11
AAPL, EURUSD = 265598, 12087792
# IB's notices nautilus logs as warnings: data farms OK (2104/2106/2158) and the cancel it asked for (202)
EXPECTED_IB_CODES = {2104, 2106, 2158, 202}


@pytest.fixture(scope="module")
def nautilus_python() -> str:
    """The nautilus venv's python (created on first use: about 30 s from PyPI)."""
    try:
        done = subprocess.run([str(ENSURE)], capture_output=True, text=True, timeout=900, env=clean_env())
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/ensure_nautilus.sh did not finish in 900 s: {exc.stderr}")
    if done.returncode != 0:
        pytest.fail(f"cannot run the nautilus_trader conformance test, scripts/ensure_nautilus.sh failed:\n"
                    f"{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def _driver_env(home: Path) -> dict[str, str]:
    env = clean_env()
    for key in ("VIRTUAL_ENV", "PYTHONPATH"):  # MMR's venv must not leak into nautilus'
        env.pop(key, None)
    env.update(HOME=str(home), PYTHONNOUSERSITE="1")
    return env


async def _run_driver(python: str, gw, tmp_path: Path, name: str, *args: str) -> tuple[dict, str]:
    """One TradingNode run against ``gw``: (its report, its log); the node must exit 0 and leave no session."""
    report_path = tmp_path / f"{name}.json"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        python, str(DRIVER), "--port", str(gw.port), "--account", gw.account_id, "--client-id", str(CLIENT_ID),
        "--report", str(report_path), "--timeout", "25", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=_driver_env(home), cwd=tmp_path)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 45)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"the nautilus driver ({name}) hung:\n" + out.decode(errors="replace")[-4000:])
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log[-4000:]
    assert report_path.exists(), log[-4000:]
    # clean shutdown: the node disconnected by itself, the gateway holds no session for it
    await until(lambda: CLIENT_ID not in gw.sessions, timeout=3)
    report = json.loads(report_path.read_text())
    assert report["failure"] is None, f"{name}: {report['failure']}\n{log[-4000:]}"
    assert report["nautilus_trader"] == "1.221.0" and report["disposed"] is True
    # nothing the adapter refused or choked on
    errors = [line for line in log.splitlines() if "[ERROR]" in line]
    assert errors == [], "\n".join(errors)
    codes = {int(c) for c in re.findall(r"\(code: (\d+), req_id=", log)}
    assert codes <= EXPECTED_IB_CODES, f"unexpected IB messages {codes - EXPECTED_IB_CODES}:\n{log[-4000:]}"
    return report, log


async def _through_take_profit(gw) -> dict:
    """Once the node's bracket entry filled and both children work at the gateway, pin AAPL's price 1.00 over
    the take-profit (the sim's own test hook) so the take-profit fills; returns the three orders as the gateway
    held them then."""
    def working() -> list | None:
        kids = [o for o in gw.engine.open_orders() if o.client_id == CLIENT_ID and o.parent_id]
        if len(kids) != 2:
            return None
        parent = gw.engine.order(kids[0].parent_id, CLIENT_ID)
        return [parent, *kids] if parent is not None and parent.status == "Filled" else None

    await until(working, timeout=60, interval=0.02)
    parent, *kids = working()
    tp = next(o for o in kids if o.order_type == "LMT")
    sl = next(o for o in kids if o.order_type != "LMT")
    gw.market.set_price(AAPL, tp.lmt_price + 1)
    return {"parent": parent, "tp": tp, "sl": sl, "pinned": tp.lmt_price + 1}


def test_nautilus_trading_node_trades_a_stock_and_fx_against_the_gateway(tmp_path, nautilus_python):
    @run_async(timeout=90)
    async def scenario() -> tuple[dict, str, dict, dict]:
        async with testkit.gateway(tmp_path, clock=SimClock(start=testkit.START, speed=10)) as gw:
            ib = await testkit.connect(gw, client_id=1)  # a position the node did not open
            try:
                trade = ib.placeOrder(Stock("AAPL", "SMART", "USD", conId=AAPL), MarketOrder("BUY", 7))
                await until(lambda: trade.isDone())
                assert trade.orderStatus.status == "Filled"
            finally:
                ib.disconnect()
            pre_position = gw.account.position(AAPL)
            mover = asyncio.ensure_future(_through_take_profit(gw))
            try:
                report, log = await _run_driver(nautilus_python, gw, tmp_path, "trade", "--leave-resting",
                                                "--history-end", testkit.START.isoformat())
            except BaseException:
                mover.cancel()
                raise
            assert mover.done(), "the node finished its bracket without the gateway seeing it work"
            bracket_seen = mover.result()
            sim = {
                "pre_position": pre_position,
                "executions": [e for e in gw.engine.executions() if e.client_id == CLIENT_ID],
                "commissions": {e.exec_id: gw.engine.commission_of(e.exec_id) for e in gw.engine.executions()},
                "positions": {con_id: (qty, avg) for con_id, qty, avg in gw.account.positions()},
                "open_orders": gw.engine.open_orders(),
                "values": gw.account.values(gw.market),
                "bars": gw.market.history(AAPL, testkit.START, 1800, 60, "TRADES", use_rth=False),
                "bracket": bracket_seen,
                "pnl": gw.account.pnl_single(AAPL, gw.market),  # the price is still pinned: the same mark
                "bracket_orders": {o.order_id: o for o in gw.engine.completed_orders() if o.client_id == CLIENT_ID},
            }
            # a restarted node (same client id) finds the resting order through reconciliation and cancels it
            again, _ = await _run_driver(nautilus_python, gw, tmp_path, "reconnect", "--reconnect")
            sim["orders"] = [o for o in gw.engine.completed_orders() if o.client_id == CLIENT_ID]
            sim["open_orders_after"] = gw.engine.open_orders()
        return report, log, sim, again

    report, log, sim, again = scenario()
    context = log[-4000:]
    trading = ["instruments", "quotes", "stock_mkt", "fx_mkt", "cancel", "trail", "bracket", "resting"]
    assert [s for s in report["steps"] if s != "bars"] == trading and "bars" in report["steps"], context
    assert "Connected to Interactive Brokers (v187)" in log  # what nautilus-ibapi 10.30.1 negotiates

    # instruments: an Equity with its ISIN, a CurrencyPair on IDEALPRO's half-pip grid
    instruments = {i["id"]: i for i in report["instruments"]}
    assert set(instruments) == {"AAPL.NASDAQ", "EUR/USD.IDEALPRO"}
    assert instruments["AAPL.NASDAQ"]["type"] == "Equity"
    assert instruments["AAPL.NASDAQ"]["sec_ids"] == {"ISIN": "US0378331005"}
    assert instruments["AAPL.NASDAQ"]["price_increment"] == "0.01"
    assert instruments["EUR/USD.IDEALPRO"]["type"] == "CurrencyPair"
    assert instruments["EUR/USD.IDEALPRO"]["price_increment"] == "0.00005"

    # a live quote stream for both: several quotes, prices that moved, never a crossed or locked book
    for iid, lo, hi in (("AAPL.NASDAQ", 50, 1000), ("EUR/USD.IDEALPRO", 0.5, 2.0)):
        q = report["quotes"][iid]
        assert q["count"] >= 3 and len(q["distinct"]) >= 2, (iid, q)
        assert all(lo < bid < ask < hi for bid, ask in q["distinct"]), (iid, q)

    # history: the stock's 30 one-minute bars before START, each the gateway's own bar (nautilus stamps a bar
    # with the time IB gives it, its start; the volume goes through nautilus' fixed-point Quantity)
    bars = report["bars"]
    assert len(bars) == 30 and len(sim["bars"]) == 30
    for got, want in zip(bars, sim["bars"], strict=True):
        assert got[:5] == [int(want.time.timestamp()), want.open, want.high, want.low, want.close], (got, want)
        assert got[5] == pytest.approx(want.volume, rel=1e-9) and got[5] > 0

    # reconciliation at start: the ib_async position, at the gateway's average cost (commission included;
    # IB reports it unrounded, nautilus puts its inferred fill on the instrument's price grid)
    start = report["start"]
    assert start["net_positions"] == {"AAPL.NASDAQ": 7.0, "EUR/USD.IDEALPRO": 0.0}
    [external] = start["positions"]
    assert external["qty"] == 7.0 and external["avg_px_open"] == round(sim["pre_position"][1], 2)

    # fills: one per market order, each the gateway's execution with its commission report
    fills = {f["role"]: f for f in report["fills"]}
    assert sorted(fills) == ["entry", "fx_mkt", "stock_mkt", "tp"] and len(report["fills"]) == 4
    execs = {e.exec_id: e for e in sim["executions"]}
    assert len(execs) == 4
    for role, con_id, side, qty in (("stock_mkt", AAPL, "BOT", 10), ("fx_mkt", EURUSD, "BOT", 20_000),
                                    ("entry", AAPL, "BOT", 10), ("tp", AAPL, "SLD", 10)):
        f = fills[role]
        e = execs[f["trade_id"]]
        assert (e.con_id, e.side, e.shares) == (con_id, side, qty) and f["qty"] == qty
        assert f["price"] == pytest.approx(e.price, abs=1e-9)
        assert str(e.order_id) == f["venue_order_id"]
        c = sim["commissions"][e.exec_id]
        assert c is not None and f["commission"] == pytest.approx(c.commission) and f["commission"] > 0
        assert f["commission_currency"] == c.currency == "USD"

    # the limit rested (accepted) and was cancelled at the gateway
    limit = next(a for a in report["accepted"] if a["role"] == "limit")
    [cancelled] = [o for o in sim["orders"] if str(o.order_id) == limit["venue_order_id"]]
    assert cancelled.status == "Cancelled" and cancelled.filled == 0 and cancelled.order_type == "LMT"
    assert cancelled.lmt_price == pytest.approx(report["limit_price"])

    # a GTC trailing stop: IB's TRAIL with the offset in auxPrice and nautilus' trigger as its first stop price
    trail = next(a for a in report["accepted"] if a["role"] == "trail")
    assert [c["role"] for c in report["canceled"]] == ["limit", "trail", "sl"]
    [stop] = [o for o in sim["orders"] if str(o.order_id) == trail["venue_order_id"]]
    assert (stop.order_type, stop.action, stop.tif, stop.total_quantity) == ("TRAIL", "SELL", "GTC", 5)
    assert stop.aux_price == pytest.approx(2.0) and stop.status == "Cancelled" and stop.filled == 0
    assert stop.trail_stop_price >= report["trail_trigger"] - 1e-9  # a sell stop only ratchets up

    # a bracket (nautilus' OrderList: market entry, take-profit limit, stop-loss stop, sent as IB parent and
    # children, transmit only on the last): the gateway held the entry as parent of two GTC SELL children at the
    # node's prices. nautilus sets no ocaGroup unless the order is tagged with one; IB links a bracket's children
    # through parentId alone (one fills, IB cancels the other), which is what the gateway does
    sent, seen = report["bracket"], sim["bracket"]
    assert sent["sent"] == ["entry", "sl", "tp"]
    parent, tp, sl = seen["parent"], seen["tp"], seen["sl"]
    assert (parent.order_type, parent.action, parent.total_quantity, parent.parent_id) == ("MKT", "BUY", 10, 0)
    assert (tp.action, tp.total_quantity, tp.tif, tp.parent_id) == ("SELL", 10, "GTC", parent.order_id)
    assert (sl.order_type, sl.action, sl.total_quantity, sl.tif, sl.parent_id) == ("STP", "SELL", 10, "GTC",
                                                                                  parent.order_id)
    assert tp.lmt_price == pytest.approx(sent["tp_price"]) and sl.aux_price == pytest.approx(sent["sl_trigger"])
    assert tp.oca_group == sl.oca_group == ""
    # the gateway: entry filled, take-profit filled once the price was pinned over it, stop-loss cancelled
    done = sim["bracket_orders"]
    assert done[parent.order_id].status == "Filled" and done[parent.order_id].filled == 10
    assert done[tp.order_id].status == "Filled" and done[tp.order_id].filled == 10
    assert done[sl.order_id].status == "Cancelled" and done[sl.order_id].filled == 0
    assert fills["tp"]["price"] >= sent["tp_price"] and fills["tp"]["price"] == pytest.approx(
        done[tp.order_id].avg_fill_price)
    # nautilus saw the same: one list (the children point at the entry and at each other), FILLED/FILLED/CANCELED
    ours = sent["orders"]
    assert {r: (o["status"], o["type"], o["side"], o["filled"]) for r, o in ours.items()} == {
        "entry": ("FILLED", "MARKET", "BUY", 10.0), "tp": ("FILLED", "LIMIT", "SELL", 10.0),
        "sl": ("CANCELED", "STOP_MARKET", "SELL", 0.0)}
    assert {r: o["venue_order_id"] for r, o in ours.items()} == {
        "entry": str(parent.order_id), "tp": str(tp.order_id), "sl": str(sl.order_id)}
    assert ours["entry"]["linked"] == ["sl", "tp"] and ours["tp"]["linked"] == ["sl"] and ours["sl"]["linked"] == ["tp"]
    assert ours["tp"]["parent"] == ours["sl"]["parent"] is not None
    assert ours["tp"]["avg_px"] == pytest.approx(fills["tp"]["price"])

    # P&L, checked against the gateway's executions, commissions and its own P&L for AAPL (price still pinned).
    # The two books differ by convention, not by numbers: IB (the gateway) keeps ONE position per contract at an
    # average cost that includes the opening commissions, so the take-profit's realized P&L is measured against
    # all 27 shares (the 7 bought by another client too) less the closing commission; nautilus keeps the node's
    # own position (its 20 shares) apart from the reconciled external 7, and its realized P&L subtracts every
    # commission the node's position paid (the openings' too).
    aapl = [execs[fills[r]["trade_id"]] for r in ("stock_mkt", "entry", "tp")]
    comms = sum(sim["commissions"][e.exec_id].commission for e in aapl)
    bought = (aapl[0].price * aapl[0].shares + aapl[1].price * aapl[1].shares) / 20
    pnl, (sim_pos, _daily, sim_unrealized, sim_realized, sim_value) = report["end"]["pnl"], sim["pnl"]
    assert pnl["realized"] == pytest.approx((aapl[2].price - bought) * 10 - comms, abs=0.01)
    # the gateway's own realized P&L: its commission report for the closing fill, also its P&L for the day
    cost = 7 * sim["pre_position"][1] + sum(e.price * e.shares + sim["commissions"][e.exec_id].commission
                                            for e in aapl[:2])
    assert sim["positions"][AAPL][1] == pytest.approx(cost / 27, abs=1e-9)
    closing = sim["commissions"][aapl[2].exec_id]
    assert closing.realized_pnl == pytest.approx(sim_realized, abs=1e-6)
    assert closing.realized_pnl == pytest.approx((aapl[2].price - cost / 27) * 10 - closing.commission, abs=0.01)
    # total P&L (realized + unrealized over the whole AAPL holding) is convention-free: it agrees to the cent
    # once both are marked at the same price (nautilus marks a long at the bid, the gateway at the last) and
    # the external 7's cost is taken as nautilus holds it (IB's average cost put on the cent grid at reconciliation)
    assert sim_pos == 17 and pnl["bid"] is not None
    mark_gap = sim_pos * (pnl["bid"] - sim_value / sim_pos)
    cost_gap = 7 * (sim["pre_position"][1] - external["avg_px_open"])
    assert pnl["realized"] + pnl["unrealized"] == pytest.approx(
        sim_realized + sim_unrealized + mark_gap + cost_gap, abs=0.01), (pnl, sim["pnl"])
    assert pnl["unrealized"] == pytest.approx(
        sum(p["qty"] * (pnl["bid"] - p["avg_px_open"]) for p in report["end"]["positions"]
            if p["instrument"] == "AAPL.NASDAQ"),
        abs=0.01)

    # the GTC limit left resting: working at the gateway, reconciled by the restarted node, cancelled by it
    [resting] = sim["open_orders"]
    assert (resting.client_id, resting.order_type, resting.tif, resting.total_quantity) == (CLIENT_ID, "LMT", "GTC", 5)
    assert resting.lmt_price == pytest.approx(report["resting_price"]) and len(report["end"]["orders_open"]) == 1
    assert again["steps"] == ["instruments", "cancel_reconciled"]
    assert again["reconciled_open"] == [{
        "instrument": "AAPL.NASDAQ", "side": "BUY", "type": "LIMIT", "qty": 5.0, "price": report["resting_price"],
        "tif": "GTC", "status": "ACCEPTED", "venue_order_id": str(resting.order_id)}]
    assert again["canceled"] == [{"role": "reconciled", "venue_order_id": str(resting.order_id),
                                  "status": "CANCELED"}]
    [gone] = [o for o in sim["orders"] if o.order_id == resting.order_id]
    assert gone.status == "Cancelled" and sim["open_orders_after"] == [] and again["end"]["orders_open"] == []
    assert again["start"]["net_positions"] == {"AAPL.NASDAQ": 17.0, "EUR/USD.IDEALPRO": 20_000.0}

    # positions: what nautilus holds is what the gateway holds
    end = report["end"]
    assert end["net_positions"] == {"AAPL.NASDAQ": 17.0, "EUR/USD.IDEALPRO": 20_000.0}
    assert {k: v[0] for k, v in sim["positions"].items()} == {AAPL: 17.0, EURUSD: 20_000.0}

    # account: the summary subscription re-sent after the fills (more margin in use than at start), and
    # nautilus' balance matches the gateway's own values (the market moved a little since: a tolerance)
    acct = end["account"]
    assert acct["id"] == "INTERACTIVE_BROKERS-DU0000001" and acct["type"] == "MARGIN"
    usd, usd_start = acct["balances"]["USD"], start["account"]["balances"]["USD"]
    assert usd["locked"] > usd_start["locked"] + 500, (usd_start, usd)
    values = {k: float(v) for k, (v, _ccy) in sim["values"].items() if _is_number(v)}
    assert usd["total"] == pytest.approx(values["NetLiquidation"], abs=25)
    assert usd["locked"] == pytest.approx(values["FullInitMarginReq"], rel=0.02)
    assert usd["free"] == pytest.approx(values["FullAvailableFunds"], abs=50)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
