"""Order, execution and account request handlers of a simulated-gateway client session (mixed into ClientSession)."""

from __future__ import annotations

from datetime import UTC, datetime

from trader.sim import protocol as P
from trader.sim import replies as R
from trader.sim import requests as Q
from trader.sim.combo_matching import BAG_CON_ID
from trader.sim.models import ExecutionEvent, SimContract, SimOrder

CME_TAGGING_FIELDS = 192  # MIN_SERVER_VER_CME_TAGGING_FIELDS: cancelOrder loses its version field


class OrderAccountHandlers:
    """Order, execution, account, position and P&L handlers; needs ClientSession's state and ``send``."""

    # ------------------------------------------------------------------ orders
    def _h_place_order(self, r: P.FieldReader) -> None:
        spec = Q.parse_place_order(r.fields, self.server_version)
        oid = spec.order_id
        if spec.unsupported:
            self.send(R.error_msg(oid, 201, f"Order rejected - reason:{spec.unsupported}"))
            return
        if spec.contract.sec_type == "BAG":
            self._place_combo(spec)
            return
        c = self._contract_or_200(oid, spec.contract)
        if c is None:
            return
        if spec.account and spec.account != self.gw.account_id:
            self.send(R.error_msg(oid, 321, f"Error validating request:-'bN' : cause - The account code "
                                            f"{spec.account} is not one of the managed accounts"))
            return
        existing = self.gw.engine.order(oid, self.client_id)  # modifying keeps the permId
        if spec.what_if:
            self._what_if(spec, c)
            return
        order = SimOrder(
            order_id=oid, client_id=self.client_id,
            perm_id=existing.perm_id if existing else 0, con_id=c.con_id,  # 0: the engine assigns
            action=spec.action, total_quantity=spec.total_quantity, order_type=spec.order_type,
            lmt_price=spec.lmt_price, aux_price=spec.aux_price, trailing_percent=spec.trailing_percent,
            trail_stop_price=spec.trail_stop_price, lmt_price_offset=spec.lmt_price_offset, tif=spec.tif,
            parent_id=spec.parent_id, oca_group=spec.oca_group, oca_type=spec.oca_type,
            transmit=spec.transmit, outside_rth=spec.outside_rth, account=self.gw.account_id,
            order_ref=spec.order_ref)
        self.gw.place(order)

    def _place_combo(self, spec: Q.OrderSpec) -> None:
        """A BAG order: its legs (by conId) go to the engine in ``extra["combo"]`` (trader/sim/combo_matching)."""
        oid = spec.order_id
        existing = None if spec.what_if else self.gw.engine.order(oid, self.client_id)
        legs = [[con_id, ratio, action] for con_id, ratio, action, _exchange in spec.combo_legs]
        combo = {"symbol": spec.contract.symbol.upper(), "currency": spec.contract.currency or "USD",
                 "exchange": spec.contract.exchange or "SMART", "legs": legs}
        order = SimOrder(
            order_id=oid, client_id=self.client_id, perm_id=existing.perm_id if existing else 0,
            con_id=BAG_CON_ID, action=spec.action, total_quantity=spec.total_quantity, order_type=spec.order_type,
            lmt_price=spec.lmt_price, tif=spec.tif, transmit=spec.transmit, outside_rth=spec.outside_rth,
            account=self.gw.account_id, order_ref=spec.order_ref, extra={"combo": combo})
        if spec.what_if:
            self._combo_what_if(order)
            return
        self.gw.place(order)

    def _combo_what_if(self, order: SimOrder) -> None:
        """whatIfOrder of a BAG: the initial/maintenance margin change is the margin its placement is checked
        against (the spread's defined max loss), the commission that of every leg at its touch; nothing placed."""
        gw = self.gw
        gw.note_what_if(self.client_id, order.order_id)
        errors, need, commission = gw.engine.combo_what_if(order)
        if errors:
            gw.dispatch(errors)
            return
        values = gw.account.values(gw.market)
        init, maint, ewl = (float(values.get(k, ("0", ""))[0])
                            for k in ("InitMarginReq", "MaintMarginReq", "EquityWithLoanValue"))
        margin = tuple(f"{v:.2f}" for v in (init, maint, ewl, need, need, -commission,
                                           init + need, maint + need, ewl - commission))
        order.status = "PreSubmitted"
        self.send(R.open_order(gw.order_contract(order), gw.wire_order(order, what_if=True, margin=margin,
                                                                       commission=commission)))

    def _what_if(self, spec: Q.OrderSpec, c: SimContract) -> None:
        """whatIfOrder: margin and commission preview in openOrder's orderState, nothing placed."""
        gw = self.gw
        gw.note_what_if(self.client_id, spec.order_id)
        price = gw.market.quote(c.con_id).last
        commission = gw.account.commission_for(c, spec.total_quantity, price)
        values = gw.account.values(gw.market)
        init = float(values.get("InitMarginReq", ("0", ""))[0])
        maint = float(values.get("MaintMarginReq", ("0", ""))[0])
        ewl = float(values.get("EquityWithLoanValue", ("0", ""))[0])
        notional = spec.total_quantity * price * c.multiplier_value
        rate = {"STK": 0.25, "CASH": 0.03}.get(c.sec_type, 0.1)
        d_init, d_maint = notional * rate, notional * rate
        margin = tuple(f"{v:.2f}" for v in (init, maint, ewl, d_init, d_maint, -commission,
                                           init + d_init, maint + d_maint, ewl - commission))
        order = SimOrder(order_id=spec.order_id, client_id=self.client_id, perm_id=0, con_id=c.con_id,
                         action=spec.action, total_quantity=spec.total_quantity, order_type=spec.order_type,
                         lmt_price=spec.lmt_price, aux_price=spec.aux_price, account=gw.account_id,
                         status="PreSubmitted")
        self.send(R.open_order(gw.wire(c), gw.wire_order(order, what_if=True, margin=margin,
                                                         commission=commission)))

    def _h_cancel_order(self, r: P.FieldReader) -> None:
        if self.server_version < CME_TAGGING_FIELDS:  # the message version went away with CME tagging
            r.skip(1)
        self.gw.cancel(self.client_id, r.int())

    def _h_global_cancel(self, r: P.FieldReader) -> None:
        self.gw.global_cancel()

    def send_order(self, o: SimOrder, *, status_only: bool) -> None:
        """openOrder (unless status_only) and orderStatus for one of this client's orders."""
        c = self.gw.order_contract(o)
        if c is None:
            return
        if not status_only:
            self.send(R.open_order(c, self.gw.wire_order(o)))
        self.send(R.order_status(o.order_id, o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id,
                                 o.parent_id, o.last_fill_price, o.client_id, o.why_held))

    def _h_open_orders(self, r: P.FieldReader) -> None:
        self._send_open_orders(lambda o: o.client_id == self.client_id or self.client_id == 0)

    def _h_all_open_orders(self, r: P.FieldReader) -> None:
        self._send_open_orders(lambda o: True)

    def _send_open_orders(self, keep) -> None:
        for o in self.gw.engine.open_orders():
            if keep(o):
                self.send_order(o, status_only=False)
        self.send(R.open_order_end())

    def _h_completed_orders(self, r: P.FieldReader) -> None:
        for o in self.gw.engine.completed_orders():
            c = self.gw.order_contract(o)
            if c is not None:
                self.send(R.completed_order(c, self.gw.wire_order(o)))
        self.send(R.completed_orders_end())

    def send_execution(self, req_id: int, ev: ExecutionEvent) -> None:
        """execDetails for one execution."""
        c = self.gw.execution_contract(ev)
        if c is None:
            return
        self.send(R.exec_details(
            req_id, ev.order_id, c, exec_id=ev.exec_id, time=P.ib_time(ev.time),
            account=ev.account or self.gw.account_id, exchange=ev.exchange or c.primary_exchange or c.exchange,
            side=ev.side, shares=ev.shares, price=ev.price, perm_id=ev.perm_id, client_id=ev.client_id,
            cum_qty=ev.cum_qty, avg_price=ev.avg_price, order_ref=ev.order_ref))

    def _h_executions(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id, client_id, acct, since = r.int(), r.int(), r.str(), r.str()
        symbol, sec_type, exchange, side = r.str().upper(), r.str().upper(), r.str().upper(), r.str().upper()
        since_dt = P.parse_ib_time(since, datetime.min.replace(tzinfo=UTC)) if since else None
        for ev in self.gw.engine.executions():
            c = self.gw.execution_contract(ev)
            if c is None or (client_id and ev.client_id != client_id):
                continue
            if (acct and acct != self.gw.account_id) or (symbol and c.symbol != symbol) \
                    or (sec_type and c.sec_type != sec_type) or (exchange and exchange not in (c.exchange, ev.exchange)) \
                    or (side and side[:1] != ev.side[:1]) or (since_dt and ev.time < since_dt):
                continue
            self.send_execution(req_id, ev)
            comm = self.gw.engine.commission_of(ev.exec_id)
            if comm is not None:
                self.send(R.commission_report(comm.exec_id, comm.commission, comm.currency, comm.realized_pnl))
        self.send(R.exec_details_end(req_id))

    # ------------------------------------------------------------------ account
    def _portfolio_msg(self, con_id: int) -> list[object] | None:
        gw = self.gw
        c = gw.universe.by_con_id(con_id)
        if c is None:
            return None
        pos, _daily, unrealized, realized, value = gw.account.pnl_single(con_id, gw.market)
        _, avg_cost = gw.account.position(con_id)
        mult = c.multiplier_value
        price = value / (pos * mult) if pos else gw.market.quote(con_id).last
        return R.portfolio_value(gw.wire(c), pos, price, value, avg_cost, unrealized, realized, gw.account_id)

    def _send_account_values(self) -> None:
        acct = self.gw.account_id
        for key, (value, ccy) in self.gw.account.values(self.gw.market).items():
            self.send(R.account_value(key, value, ccy, acct))
        for key, value, ccy in self.gw.account.currency_rows(self.gw.market):
            self.send(R.account_value(key, value, ccy, acct))

    def _h_account_updates(self, r: P.FieldReader) -> None:
        r.skip(1)
        subscribe = r.bool()
        self.account_updates = subscribe
        if not subscribe:
            return
        self._send_account_values()
        for con_id, _pos, _avg in self.gw.account.positions():
            msg = self._portfolio_msg(con_id)
            if msg is not None:
                self.send(msg)
        self.send(R.account_update_time(self.gw.clock.now().strftime("%H:%M")))
        self.send(R.account_download_end(self.gw.account_id))

    def _h_account_updates_multi(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id, _acct, model = r.int(), r.str(), r.str()
        self.multi_subs[req_id] = (model, {})
        self._push_multi(req_id)
        self.send(R.account_update_multi_end(req_id))

    def _h_cancel_account_updates_multi(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.multi_subs.pop(r.int(), None)

    def _push_multi(self, req_id: int) -> None:
        """accountUpdateMulti for every value that changed since this subscription last saw it."""
        model, last = self.multi_subs[req_id]
        for key, (value, ccy) in self.gw.account.values(self.gw.market).items():
            if last.get(key) != (value, ccy):
                last[key] = (value, ccy)
                self.send(R.account_update_multi(req_id, self.gw.account_id, model, key, value, ccy))

    def _h_account_summary(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id, _group, tags = r.int(), r.str(), r.str()
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        self.summary_subs[req_id] = (wanted, {})  # IB keeps it as a subscription until cancelled
        self._push_summary(req_id)
        self.send(R.account_summary_end(req_id))

    def _h_cancel_account_summary(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.summary_subs.pop(r.int(), None)

    def _push_summary(self, req_id: int) -> None:
        """accountSummary rows for the subscription's tags whose value changed since it last saw them."""
        wanted, last = self.summary_subs[req_id]
        for tag, (value, ccy) in self.gw.account.values(self.gw.market).items():
            if not wanted or "All" in wanted or tag in wanted or ("$LEDGER" in wanted and tag == "TotalCashValue"):
                if last.get(tag) != (value, ccy):
                    last[tag] = (value, ccy)
                    self.send(R.account_summary(req_id, self.gw.account_id, tag, value, ccy))

    def _h_positions(self, r: P.FieldReader) -> None:
        self.positions_sub = True
        for con_id, pos, avg_cost in self.gw.account.positions():
            c = self.gw.universe.by_con_id(con_id)
            if c is not None:
                self.send(R.position(self.gw.account_id, self.gw.wire(c), pos, avg_cost))
        self.send(R.position_end())

    def _h_cancel_positions(self, r: P.FieldReader) -> None:
        self.positions_sub = False

    def push_account(self, changed: set[int] | None) -> None:
        """After fills (`changed` conIds) or periodically (None: re-mark everything)."""
        gw = self.gw
        if self.positions_sub and changed:
            for con_id in changed:
                c = gw.universe.by_con_id(con_id)
                if c is not None:
                    pos, avg = gw.account.position(con_id)
                    self.send(R.position(gw.account_id, self.gw.wire(c), pos, avg))
        if self.account_updates:
            ids = changed if changed is not None else [p[0] for p in gw.account.positions()]
            for con_id in ids:
                msg = self._portfolio_msg(con_id)
                if msg is not None:
                    self.send(msg)
            self._send_account_values()
            self.send(R.account_update_time(gw.clock.now().strftime("%H:%M")))
        for req_id in list(self.summary_subs):
            self._push_summary(req_id)
        for req_id in list(self.multi_subs):
            self._push_multi(req_id)

    def _h_pnl(self, r: P.FieldReader) -> None:
        req_id = r.int()
        self.pnl_subs[req_id] = ()
        self.push_pnl()

    def _h_cancel_pnl(self, r: P.FieldReader) -> None:
        self.pnl_subs.pop(r.int(), None)

    def _h_pnl_single(self, r: P.FieldReader) -> None:
        req_id, _acct, _model, con_id = r.int(), r.str(), r.str(), r.int()
        self.pnl_single_subs[req_id] = (con_id, ())
        self.push_pnl()

    def _h_cancel_pnl_single(self, r: P.FieldReader) -> None:
        self.pnl_single_subs.pop(r.int(), None)

    def push_pnl(self) -> None:
        """pnl / pnlSingle for every subscription whose numbers changed."""
        gw = self.gw
        if self.pnl_subs:
            values = tuple(round(v, 6) for v in gw.account.pnl(gw.market))
            for req_id, last in self.pnl_subs.items():
                if values != last:
                    self.pnl_subs[req_id] = values
                    self.send(R.pnl(req_id, *values))
        for req_id, (con_id, last) in list(self.pnl_single_subs.items()):
            values = tuple(round(v, 6) for v in gw.account.pnl_single(con_id, gw.market))
            if values != last:
                self.pnl_single_subs[req_id] = (con_id, values)
                self.send(R.pnl_single(req_id, *values))
