"""One TWS-API client connection of the simulated gateway: handshake, request handlers, subscriptions.

Split from gateway.py (which owns the exchange, event routing and the tick loop) to keep both readable.
Every ``_h_<name>`` method handles one incoming message id (see ``HANDLERS``); replies are field lists built
by trader/sim/protocol.py and written through ``send`` (which honours the reply-delay fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from trader.errors import DecodeError, MessageTooLarge
from trader.sim import protocol as P
from trader.sim.faults import MSG_PACING
from trader.sim.models import ExecutionEvent, Quote, SimContract, SimOrder

if TYPE_CHECKING:
    from trader.sim.gateway import SimGateway

log = logging.getLogger(__name__)

NOT_SUPPORTED = 10999  # our code for "request not supported in the simulator" (ends the client's request)
MSG_200 = "No security definition has been found for the request"
BAR_SECONDS = {
    "sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600,
    "day": 86400, "days": 86400, "week": 7 * 86400, "weeks": 7 * 86400, "month": 30 * 86400, "months": 30 * 86400,
}
DURATION_SECONDS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
# requests we recognise but do not simulate → (position of their reqId field, name)
UNSUPPORTED_WITH_REQ_ID = {
    21: (2, "exerciseOptions"), 22: (1, "reqScannerSubscription"), 52: (2, "reqFundamentalData"),
    54: (2, "calculateImpliedVolatility"), 55: (2, "calculateOptionPrice"), 84: (1, "reqNewsArticle"),
    86: (1, "reqHistoricalNews"), 88: (1, "reqHistogramData"), 96: (1, "reqHistoricalTicks"),
    100: (1, "reqWshMetaData"), 102: (1, "reqWshEventData"),
}
IGNORED = frozenset({12, 13, 14, 19, 23, 53, 56, 57, 65, 66, 67, 68, 69, 70, 72, 73, 74, 75, 80, 89, 101, 103})
DEPTH_MAX_ROWS = 10
SIZE_TICK = {P.TickType.BID: P.TickType.BID_SIZE, P.TickType.ASK: P.TickType.ASK_SIZE,
             P.TickType.LAST: P.TickType.LAST_SIZE}


@dataclass(slots=True)
class _MktSub:
    con_id: int
    sent: dict[int, tuple[float, float | None]] = field(default_factory=dict)


@dataclass(slots=True)
class _TbtSub:
    con_id: int
    kind: str  # "Last", "AllLast", "BidAsk", "MidPoint"
    last: tuple = ()


@dataclass(slots=True)
class _BarSub:
    con_id: int
    what: str
    use_rth: bool
    next_end: int  # epoch seconds at which the next 5-second bar completes


@dataclass(slots=True)
class _HistSub:
    con_id: int
    bar_seconds: int
    what: str
    use_rth: bool
    format_date: int
    last: tuple = ()


@dataclass(slots=True)
class _DepthSub:
    con_id: int
    rows: int
    sent: list = field(default_factory=list)


class ClientSession:
    """State and request handlers of one client socket."""

    def __init__(self, gw: SimGateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.gw = gw
        self.reader = reader
        self.writer = writer
        self.client_id = -1
        self.server_version = P.SERVER_VERSION
        self.mkt: dict[int, _MktSub] = {}
        self.tbt: dict[int, _TbtSub] = {}
        self.bars: dict[int, _BarSub] = {}
        self.depth: dict[int, _DepthSub] = {}
        self.hist: dict[int, _HistSub] = {}  # keepUpToDate historical requests
        self.pnl_subs: dict[int, tuple] = {}
        self.pnl_single_subs: dict[int, tuple[int, tuple]] = {}
        self.account_updates = False
        self.positions_sub = False
        self._delayed: deque[tuple[float, bytes]] = deque()
        self._delay_task: asyncio.Task | None = None
        self._closed = asyncio.Event()
        self._ready = False

    # ------------------------------------------------------------------ I/O
    def send(self, fields: list[object]) -> None:
        """Queue one message (delayed when the reply-delay fault is on; order is always kept)."""
        if self.writer.is_closing():
            return
        data = P.encode_msg(fields)
        delay = self.gw.faults.reply_delay_ms / 1000.0
        if delay <= 0 and not self._delayed:
            self.writer.write(data)
            return
        self._delayed.append((time.monotonic() + delay, data))
        if self._delay_task is None or self._delay_task.done():
            self._delay_task = asyncio.get_running_loop().create_task(self._drain_delayed())

    async def _drain_delayed(self) -> None:
        while self._delayed:
            due, data = self._delayed[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._delayed.popleft()
            if not self.writer.is_closing():
                self.writer.write(data)

    def close(self) -> None:
        """Close the socket politely."""
        with contextlib.suppress(Exception):
            self.writer.close()

    def abort(self) -> None:
        """Drop the socket without a goodbye (fault injection)."""
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    async def wait_closed(self) -> None:
        """Until run() has returned."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._closed.wait(), 2)

    async def run(self) -> None:
        """Handshake, then read and dispatch requests until the client goes away."""
        try:
            if not await self._handshake():
                return
            while True:
                n = P.parse_length(await self.reader.readexactly(4))
                fields = P.decode_payload(await self.reader.readexactly(n))
                if fields:
                    self.handle(fields)
                    if self.writer.is_closing():
                        return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (DecodeError, MessageTooLarge) as exc:
            log.warning("client %s sent a bad frame: %s; closing", self.client_id, exc)
        finally:
            self._delayed.clear()
            if self._delay_task:
                self._delay_task.cancel()
            self.close()
            self._closed.set()

    async def _handshake(self) -> bool:
        prefix = await self.reader.readexactly(4)
        if prefix != P.HANDSHAKE_PREFIX:
            log.warning("not a TWS API client (prefix %r); closing", prefix)
            return False
        n = P.parse_length(await self.reader.readexactly(4))
        low, high, _opts = P.parse_version_range((await self.reader.readexactly(n)).decode(errors="replace"))
        if high < P.MIN_CLIENT_VERSION or low > P.SERVER_VERSION:
            log.warning("client versions v%s..%s outside what we serve; closing", low, high)
            return False
        self.server_version = min(high, P.SERVER_VERSION)
        self.writer.write(P.handshake_reply(self.server_version, self.gw.clock.now()))
        return True

    def handle(self, fields: list[str]) -> None:
        """Dispatch one request; any failure becomes an IB-style error, never a dropped connection."""
        try:
            msg_id = int(fields[0])
        except ValueError:
            self.send(P.error_msg(-1, 321, f"Error validating request:-'{fields[0][:20]}' : unparseable id"))
            return
        if not self._ready and msg_id != P.In.START_API:
            self.send(P.error_msg(-1, 321, "Error validating request: startApi must come first"))
            return
        handler = HANDLERS.get(msg_id)
        try:
            if handler is not None:
                handler(self, P.FieldReader(fields, 1))
            elif msg_id in UNSUPPORTED_WITH_REQ_ID:
                pos, name = UNSUPPORTED_WITH_REQ_ID[msg_id]
                req_id = int(fields[pos]) if len(fields) > pos and fields[pos].lstrip("-").isdigit() else -1
                log.info("client %s: %s not supported in the simulator", self.client_id, name)
                self.send(P.error_msg(req_id, NOT_SUPPORTED, f"{name} is not supported in the simulator"))
            elif msg_id in IGNORED:
                log.info("client %s: ignoring request id %s (no effect in the simulator)", self.client_id, msg_id)
            else:
                log.warning("client %s: unknown request id %s", self.client_id, msg_id)
                self.send(P.error_msg(-1, 321, f"Error validating request:-'{msg_id}' : "
                                               "unknown request, not supported in the simulator"))
        except Exception as exc:  # a handler bug answers like IB's validation error
            log.exception("client %s: request %s failed", self.client_id, fields[:3])
            self.send(P.error_msg(-1, 321, f"Error validating request:-'{msg_id}' : {exc}"))

    # ------------------------------------------------------------------ connection
    def _h_start_api(self, r: P.FieldReader) -> None:
        r.skip(1)  # version
        self.client_id = r.int()
        if not self.gw.register(self):
            self.writer.write(P.encode_msg(P.error_msg(
                -1, 326, "Unable to connect as the client id is already in use. Retry with a unique client id.")))
            self.close()
            return
        self._ready = True
        self.send(P.managed_accounts([self.gw.account_id]))
        self.send(P.next_valid_id(self.gw.next_order_id(self.client_id)))
        for code, msg in FARM_OK:
            self.send(P.error_msg(-1, code, msg))

    def _h_req_ids(self, r: P.FieldReader) -> None:
        self.send(P.next_valid_id(self.gw.next_order_id(self.client_id)))

    def _h_current_time(self, r: P.FieldReader) -> None:
        self.send(P.current_time(int(self.gw.clock.now().timestamp())))

    def _h_managed_accts(self, r: P.FieldReader) -> None:
        self.send(P.managed_accounts([self.gw.account_id]))

    def _h_market_data_type(self, r: P.FieldReader) -> None:
        pass  # simulated data is always "live" (type 1); IB answers per request with marketDataType

    def _h_noop(self, r: P.FieldReader) -> None:
        pass

    def _h_user_info(self, r: P.FieldReader) -> None:
        self.send(P.user_info(r.int()))

    # ------------------------------------------------------------------ contracts
    def _contract_or_200(self, req_id: int, spec: P.ContractSpec) -> SimContract | None:
        found = self.gw.resolve(spec)
        if len(found) == 1:
            return found[0]
        if not found:
            self.send(P.error_msg(req_id, 200, MSG_200))
        else:
            self.send(P.error_msg(req_id, 200, "The contract description specified is ambiguous"))
        return None

    def _h_contract_details(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id = r.int()
        found = self.gw.resolve(r.contract())
        if not found:
            self.send(P.error_msg(req_id, 200, MSG_200))
            return
        for c in found:
            self.send(self._details(req_id, c))
        self.send(P.contract_details_end(req_id))

    def _details(self, req_id: int, c: SimContract) -> list[object]:
        trading, liquid = c.trading_hours, c.liquid_hours
        if not trading:
            trading, liquid = self.gw.market.hours_text(c.con_id)
        under = self.gw.universe.by_con_id(c.underlying_con_id) if c.underlying_con_id else None
        return P.contract_details(
            req_id, self.gw.wire(c), market_name=c.market_name or c.trading_class, min_tick=c.min_tick,
            order_types=c.order_types, valid_exchanges=c.valid_exchanges or c.exchange,
            price_magnifier=c.price_magnifier, under_con_id=c.underlying_con_id, long_name=c.long_name,
            contract_month=c.contract_month, industry=c.industry, category=c.category,
            subcategory=c.subcategory, time_zone=c.time_zone, trading_hours=trading, liquid_hours=liquid,
            under_symbol=c.underlying_symbol or (under.symbol if under else ""),
            under_sec_type=c.underlying_sec_type or (under.sec_type if under else ""),
            stock_type="COMMON" if c.sec_type == "STK" else "")

    def _h_matching_symbols(self, r: P.FieldReader) -> None:
        req_id, pattern = r.int(), r.str()
        rows = [(self.gw.wire(c), self.gw.universe.derivative_sec_types(c.con_id), c.long_name)
                for c in self.gw.universe.search(pattern)]
        self.send(P.symbol_samples(req_id, rows))

    def _h_sec_def_opt_params(self, r: P.FieldReader) -> None:
        req_id, _sym, _fut_exchange, _sec_type, under_con_id = r.int(), r.str(), r.str(), r.str(), r.int()
        for exchange, tc, mult, exps, strikes in self.gw.universe.option_chain(under_con_id):
            self.send(P.sec_def_opt_params(req_id, exchange, under_con_id, tc, mult, exps, strikes))
        self.send(P.sec_def_opt_params_end(req_id))

    def _h_market_rule(self, r: P.FieldReader) -> None:
        rule_id = r.int()
        self.send(P.market_rule(rule_id, [(0.0, 0.01)]))

    def _h_depth_exchanges(self, r: P.FieldReader) -> None:
        self.send(P.mkt_depth_exchanges([("SMART", "STK", "", "Deep", 1), ("GLOBEX", "FUT", "", "Deep", 1),
                                         ("IDEALPRO", "CASH", "", "Deep", 1)]))

    def _h_news_providers(self, r: P.FieldReader) -> None:
        self.send(P.news_providers())

    # ------------------------------------------------------------------ market data
    def _h_mkt_data(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id = r.int()
        spec = r.contract()
        if spec.sec_type == "BAG":
            self.send(P.error_msg(req_id, NOT_SUPPORTED, "combo market data is not supported in the simulator"))
            return
        if r.bool():  # delta-neutral contract
            r.skip(3)
        _generic, snapshot = r.str(), r.bool()
        if req_id in self.mkt:
            self.send(P.error_msg(req_id, 322, f"Duplicate ticker id {req_id}"))
            return
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        self.send(P.market_data_type(req_id, 1))
        self.send(P.tick_req_params(req_id, c.min_tick, "9c0001", 3))
        sub = _MktSub(c.con_id)
        if self.gw.faults.market_data_paused():
            if snapshot:
                self.send(P.tick_snapshot_end(req_id))
            else:
                self.mkt[req_id] = sub
            return
        self._push_ticks(req_id, sub, self.gw.market.quote(c.con_id), c)
        if snapshot:
            self.send(P.tick_snapshot_end(req_id))
        else:
            self.mkt[req_id] = sub

    def _h_cancel_mkt_data(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.mkt.pop(r.int(), None)

    def _push_ticks(self, req_id: int, sub: _MktSub, q: Quote, c: SimContract) -> None:
        T = P.TickType
        ticks: list[tuple[int, float, float | None]] = []
        if c.sec_type != "IND":
            ticks += [(T.BID, q.bid, q.bid_size), (T.ASK, q.ask, q.ask_size)]
        if c.sec_type != "CASH":
            ticks.append((T.LAST, q.last, q.last_size))
        ticks += [(T.HIGH, q.high, None), (T.LOW, q.low, None), (T.CLOSE, q.close, None), (T.OPEN, q.open, None)]
        sent = sub.sent
        for tick_type, price, size in ticks:
            prev = sent.get(tick_type)
            if prev == (price, size):
                continue
            sent[tick_type] = (price, size)
            if prev is not None and prev[0] == price and size is not None:
                self.send(P.tick_size(req_id, SIZE_TICK[tick_type], size))
            elif price > 0:
                self.send(P.tick_price(req_id, tick_type, price, size))
                if tick_type == T.LAST:
                    self.send(P.tick_string(req_id, T.LAST_TIMESTAMP, str(int(q.time.timestamp()))))
        if c.sec_type != "CASH" and sent.get(T.VOLUME) != (q.volume, None):
            sent[T.VOLUME] = (q.volume, None)
            self.send(P.tick_size(req_id, T.VOLUME, q.volume))

    def clear_market_subscriptions(self) -> None:
        """Forget every streaming subscription (connectivity restored with data lost)."""
        self.mkt.clear()
        self.tbt.clear()
        self.bars.clear()
        self.depth.clear()
        self.hist.clear()

    def push_market_data(self, now: datetime, quotes: dict[int, Quote]) -> None:
        """Stream changes since the last tick for every subscription of this client."""
        market = self.gw.market

        def quote(con_id: int) -> Quote:
            q = quotes.get(con_id)
            if q is None:
                q = quotes[con_id] = market.quote(con_id, now)
            return q

        for req_id, sub in list(self.mkt.items()):
            c = self.gw.universe.by_con_id(sub.con_id)
            if c is not None:
                self._push_ticks(req_id, sub, quote(sub.con_id), c)
        for req_id, t in list(self.tbt.items()):
            self._push_tick_by_tick(req_id, t, quote(t.con_id))
        for req_id, d in list(self.depth.items()):
            self._push_depth(req_id, d, quote(d.con_id))
        for req_id, h in list(self.hist.items()):
            bars = market.history(h.con_id, now, h.bar_seconds, h.bar_seconds, h.what, h.use_rth)
            if bars:
                b = bars[-1]
                row = (_bar_date(b.time, h.bar_seconds >= 86400, h.format_date), b.open, b.high, b.low, b.close,
                       b.volume, b.wap, b.count)
                if row != h.last:
                    h.last = row
                    self.send(P.historical_data_update(req_id, row))
        epoch = int(now.timestamp())
        for req_id, b in list(self.bars.items()):
            while b.next_end <= epoch:
                end = datetime.fromtimestamp(b.next_end, UTC)
                bars = market.history(b.con_id, end, 5, 5, b.what, b.use_rth)
                if bars:
                    bar = bars[-1]
                    self.send(P.real_time_bar(req_id, int(bar.time.timestamp()), bar.open, bar.high, bar.low,
                                              bar.close, bar.volume, bar.wap, bar.count))
                b.next_end += 5

    # tick-by-tick
    def _h_tick_by_tick(self, r: P.FieldReader) -> None:
        req_id = r.int()
        spec = r.contract()
        kind = r.str()
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        if kind not in ("Last", "AllLast", "BidAsk", "MidPoint"):
            self.send(P.error_msg(req_id, 10190, f"Invalid tick-by-tick type {kind!r}"))
            return
        sub = self.tbt[req_id] = _TbtSub(c.con_id, kind)
        self._push_tick_by_tick(req_id, sub, self.gw.market.quote(c.con_id))

    def _h_cancel_tick_by_tick(self, r: P.FieldReader) -> None:
        self.tbt.pop(r.int(), None)

    def _push_tick_by_tick(self, req_id: int, sub: _TbtSub, q: Quote) -> None:
        epoch = int(q.time.timestamp())
        if sub.kind == "BidAsk":
            key = (q.bid, q.ask, q.bid_size, q.ask_size)
            if key != sub.last:
                sub.last = key
                self.send(P.tick_by_tick_bid_ask(req_id, epoch, *key))
        elif sub.kind == "MidPoint":
            if (q.mid,) != sub.last:
                sub.last = (q.mid,)
                self.send(P.tick_by_tick_mid(req_id, epoch, q.mid))
        else:
            key = (q.last, q.volume)
            if key != sub.last:
                sub.last = key
                self.send(P.tick_by_tick_last(req_id, 1 if sub.kind == "Last" else 2, epoch, q.last,
                                              q.last_size or 1.0, "SIM"))

    # depth
    def _h_mkt_depth(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id = r.int()
        spec = r.contract()
        rows = r.int()
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        sub = self.depth[req_id] = _DepthSub(c.con_id, max(1, min(rows or 5, DEPTH_MAX_ROWS)))
        self._push_depth(req_id, sub, self.gw.market.quote(c.con_id))

    def _h_cancel_mkt_depth(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.depth.pop(r.int(), None)

    def _push_depth(self, req_id: int, sub: _DepthSub, q: Quote) -> None:
        """A synthetic ladder: one tick apart from the touch, sizes growing away from it."""
        c = self.gw.universe.by_con_id(sub.con_id)
        tick = c.min_tick if c else 0.01
        ladder = []
        for i in range(sub.rows):
            grow = 1.0 + 0.5 * i
            ladder.append((1, i, round(q.bid - i * tick, 10), max(q.bid_size, 1.0) * grow))
            ladder.append((0, i, round(q.ask + i * tick, 10), max(q.ask_size, 1.0) * grow))
        first = not sub.sent
        for side, pos, price, size in ladder:
            if first:
                self.send(P.market_depth(req_id, pos, 0, side, price, size))
            elif (side, pos, price, size) not in sub.sent:
                self.send(P.market_depth(req_id, pos, 1, side, price, size))
        sub.sent = ladder

    # real-time bars
    def _h_real_time_bars(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id = r.int()
        spec = r.contract()
        _size, what, use_rth = r.int(), r.str() or "TRADES", r.bool()
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        epoch = int(self.gw.clock.now().timestamp())
        self.bars[req_id] = _BarSub(c.con_id, what.upper(), use_rth, epoch - epoch % 5 + 5)

    def _h_cancel_real_time_bars(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.bars.pop(r.int(), None)

    # ------------------------------------------------------------------ history
    def _h_historical_data(self, r: P.FieldReader) -> None:
        req_id = r.int()
        spec = r.contract()
        r.skip(1)  # includeExpired
        end_text, bar_size, duration, use_rth, what, format_date = (
            r.str(), r.str(), r.str(), r.bool(), r.str() or "TRADES", r.int(1))
        if spec.sec_type == "BAG":
            r.skip(4 * r.int())
        keep_up_to_date = r.bool()
        if not self.gw.history_allowed():
            self.send(P.error_msg(req_id, 162, MSG_PACING))
            return
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        try:
            bar_s = _bar_seconds(bar_size)
            dur_s = _duration_seconds(duration)
            now = self.gw.clock.now()
            end = min(P.parse_ib_time(end_text, now), now)
        except (ValueError, DecodeError) as exc:
            self.send(P.error_msg(req_id, 321, f"Error validating request:-'bP' : cause - {exc}"))
            return
        bars = self.gw.market.history(c.con_id, end, dur_s, bar_s, what.upper(), use_rth)
        if not bars:
            self.send(P.error_msg(req_id, 162, "Historical Market Data Service error message:HMDS query "
                                               "returned no data"))
            return
        daily = bar_s >= 86400
        rows = [(_bar_date(b.time, daily, format_date), b.open, b.high, b.low, b.close, b.volume, b.wap, b.count)
                for b in bars]
        start = end - _td(dur_s)
        self.send(P.historical_data(req_id, P.ib_time(start), P.ib_time(end), rows))
        if keep_up_to_date:  # then the forming bar on every tick, like IB's historicalDataUpdate
            self.hist[req_id] = _HistSub(c.con_id, bar_s, what.upper(), use_rth, format_date)

    def _h_cancel_historical_data(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.hist.pop(r.int(), None)

    def _h_head_timestamp(self, r: P.FieldReader) -> None:
        req_id = r.int()
        spec = r.contract()
        r.skip(2)  # includeExpired, useRTH
        _what, format_date = r.str(), r.int(1)
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        head = (self.gw.clock.now() - _td(3 * 365 * 86400)).replace(hour=0, minute=0, second=0, microsecond=0)
        stamp = str(int(head.timestamp())) if format_date == 2 else P.ib_time(head)
        self.send(P.head_timestamp(req_id, stamp))

    # ------------------------------------------------------------------ orders
    def _h_place_order(self, r: P.FieldReader) -> None:
        spec = P.parse_place_order(r.fields, self.server_version)
        oid = spec.order_id
        if spec.unsupported:
            self.send(P.error_msg(oid, 201, f"Order rejected - reason:{spec.unsupported}"))
            return
        c = self._contract_or_200(oid, spec.contract)
        if c is None:
            return
        if spec.account and spec.account != self.gw.account_id:
            self.send(P.error_msg(oid, 321, f"Error validating request:-'bN' : cause - The account code "
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

    def _what_if(self, spec: P.OrderSpec, c: SimContract) -> None:
        """whatIfOrder: margin and commission preview in openOrder's orderState, nothing placed."""
        gw = self.gw
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
        self.send(P.open_order(gw.wire(c), gw.wire_order(order, what_if=True, margin=margin,
                                                         commission=commission)))

    def _h_cancel_order(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.gw.cancel(self.client_id, r.int())

    def _h_global_cancel(self, r: P.FieldReader) -> None:
        self.gw.global_cancel()

    def send_order(self, o: SimOrder, *, status_only: bool) -> None:
        """openOrder (unless status_only) and orderStatus for one of this client's orders."""
        c = self.gw.universe.by_con_id(o.con_id)
        if c is None:
            return
        if not status_only:
            self.send(P.open_order(self.gw.wire(c), self.gw.wire_order(o)))
        self.send(P.order_status(o.order_id, o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id,
                                 o.parent_id, o.last_fill_price, o.client_id, o.why_held))

    def _h_open_orders(self, r: P.FieldReader) -> None:
        self._send_open_orders(lambda o: o.client_id == self.client_id or self.client_id == 0)

    def _h_all_open_orders(self, r: P.FieldReader) -> None:
        self._send_open_orders(lambda o: True)

    def _send_open_orders(self, keep) -> None:
        for o in self.gw.engine.open_orders():
            if keep(o):
                self.send_order(o, status_only=False)
        self.send(P.open_order_end())

    def _h_completed_orders(self, r: P.FieldReader) -> None:
        for o in self.gw.engine.completed_orders():
            c = self.gw.universe.by_con_id(o.con_id)
            if c is not None:
                self.send(P.completed_order(self.gw.wire(c), self.gw.wire_order(o)))
        self.send(P.completed_orders_end())

    def send_execution(self, req_id: int, ev: ExecutionEvent) -> None:
        """execDetails for one execution."""
        c = self.gw.universe.by_con_id(ev.con_id)
        if c is None:
            return
        self.send(P.exec_details(
            req_id, ev.order_id, self.gw.wire(c), exec_id=ev.exec_id, time=P.ib_time(ev.time),
            account=ev.account or self.gw.account_id, exchange=ev.exchange or c.primary_exchange or c.exchange,
            side=ev.side, shares=ev.shares, price=ev.price, perm_id=ev.perm_id, client_id=ev.client_id,
            cum_qty=ev.cum_qty, avg_price=ev.avg_price, order_ref=ev.order_ref))

    def _h_executions(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id, client_id, acct, since = r.int(), r.int(), r.str(), r.str()
        symbol, sec_type, exchange, side = r.str().upper(), r.str().upper(), r.str().upper(), r.str().upper()
        since_dt = P.parse_ib_time(since, datetime.min.replace(tzinfo=UTC)) if since else None
        for ev in self.gw.engine.executions():
            c = self.gw.universe.by_con_id(ev.con_id)
            if c is None or (client_id and ev.client_id != client_id):
                continue
            if (acct and acct != self.gw.account_id) or (symbol and c.symbol != symbol) \
                    or (sec_type and c.sec_type != sec_type) or (exchange and exchange not in (c.exchange, ev.exchange)) \
                    or (side and side[:1] != ev.side[:1]) or (since_dt and ev.time < since_dt):
                continue
            self.send_execution(req_id, ev)
            comm = self.gw.engine.commission_of(ev.exec_id)
            if comm is not None:
                self.send(P.commission_report(comm.exec_id, comm.commission, comm.currency, comm.realized_pnl))
        self.send(P.exec_details_end(req_id))

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
        return P.portfolio_value(gw.wire(c), pos, price, value, avg_cost, unrealized, realized, gw.account_id)

    def _send_account_values(self) -> None:
        acct = self.gw.account_id
        for key, (value, ccy) in self.gw.account.values(self.gw.market).items():
            self.send(P.account_value(key, value, ccy, acct))

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
        self.send(P.account_update_time(self.gw.clock.now().strftime("%H:%M")))
        self.send(P.account_download_end(self.gw.account_id))

    def _h_account_updates_multi(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id, _acct, model = r.int(), r.str(), r.str()
        for key, (value, ccy) in self.gw.account.values(self.gw.market).items():
            self.send(P.account_update_multi(req_id, self.gw.account_id, model, key, value, ccy))
        self.send(P.account_update_multi_end(req_id))

    def _h_account_summary(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id, _group, tags = r.int(), r.str(), r.str()
        values = self.gw.account.values(self.gw.market)
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        for tag, (value, ccy) in values.items():
            if not wanted or "All" in wanted or tag in wanted or ("$LEDGER" in wanted and tag == "TotalCashValue"):
                self.send(P.account_summary(req_id, self.gw.account_id, tag, value, ccy))
        self.send(P.account_summary_end(req_id))

    def _h_positions(self, r: P.FieldReader) -> None:
        self.positions_sub = True
        for con_id, pos, avg_cost in self.gw.account.positions():
            c = self.gw.universe.by_con_id(con_id)
            if c is not None:
                self.send(P.position(self.gw.account_id, self.gw.wire(c), pos, avg_cost))
        self.send(P.position_end())

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
                    self.send(P.position(gw.account_id, self.gw.wire(c), pos, avg))
        if self.account_updates:
            ids = changed if changed is not None else [p[0] for p in gw.account.positions()]
            for con_id in ids:
                msg = self._portfolio_msg(con_id)
                if msg is not None:
                    self.send(msg)
            self._send_account_values()
            self.send(P.account_update_time(gw.clock.now().strftime("%H:%M")))

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
                    self.send(P.pnl(req_id, *values))
        for req_id, (con_id, last) in list(self.pnl_single_subs.items()):
            values = tuple(round(v, 6) for v in gw.account.pnl_single(con_id, gw.market))
            if values != last:
                self.pnl_single_subs[req_id] = (con_id, values)
                self.send(P.pnl_single(req_id, *values))


FARM_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


def _td(seconds: int):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def _bar_seconds(text: str) -> int:
    """'5 mins' → 300, '1 day' → 86400 …"""
    n, _, unit = text.strip().partition(" ")
    if unit.lower() not in BAR_SECONDS:
        raise ValueError(f"unsupported bar size {text!r}")
    return int(n) * BAR_SECONDS[unit.lower()]


def _duration_seconds(text: str) -> int:
    """'30 D' → 2592000 …"""
    n, _, unit = text.strip().partition(" ")
    if unit.upper() not in DURATION_SECONDS:
        raise ValueError(f"unsupported duration {text!r}")
    return int(n) * DURATION_SECONDS[unit.upper()]


def _bar_date(t: datetime, daily: bool, format_date: int) -> str:
    """IB's bar date: 'YYYYMMDD' for daily bars; intraday as zoned text (1) or epoch seconds (2)."""
    if daily:
        return t.strftime("%Y%m%d")
    return str(int(t.timestamp())) if format_date == 2 else P.ib_time(t)


_I = P.In
HANDLERS = {
    _I.START_API: ClientSession._h_start_api,
    _I.REQ_IDS: ClientSession._h_req_ids,
    _I.REQ_CURRENT_TIME: ClientSession._h_current_time,
    _I.REQ_MANAGED_ACCTS: ClientSession._h_managed_accts,
    _I.REQ_MARKET_DATA_TYPE: ClientSession._h_market_data_type,
    _I.REQ_AUTO_OPEN_ORDERS: ClientSession._h_noop,
    _I.REQ_USER_INFO: ClientSession._h_user_info,
    _I.REQ_CONTRACT_DETAILS: ClientSession._h_contract_details,
    _I.REQ_MATCHING_SYMBOLS: ClientSession._h_matching_symbols,
    _I.REQ_SEC_DEF_OPT_PARAMS: ClientSession._h_sec_def_opt_params,
    _I.REQ_MARKET_RULE: ClientSession._h_market_rule,
    _I.REQ_MKT_DEPTH_EXCHANGES: ClientSession._h_depth_exchanges,
    _I.REQ_NEWS_PROVIDERS: ClientSession._h_news_providers,
    _I.REQ_MKT_DATA: ClientSession._h_mkt_data,
    _I.CANCEL_MKT_DATA: ClientSession._h_cancel_mkt_data,
    _I.REQ_TICK_BY_TICK: ClientSession._h_tick_by_tick,
    _I.CANCEL_TICK_BY_TICK: ClientSession._h_cancel_tick_by_tick,
    _I.REQ_MKT_DEPTH: ClientSession._h_mkt_depth,
    _I.CANCEL_MKT_DEPTH: ClientSession._h_cancel_mkt_depth,
    _I.REQ_REAL_TIME_BARS: ClientSession._h_real_time_bars,
    _I.CANCEL_REAL_TIME_BARS: ClientSession._h_cancel_real_time_bars,
    _I.REQ_HISTORICAL_DATA: ClientSession._h_historical_data,
    _I.CANCEL_HISTORICAL_DATA: ClientSession._h_cancel_historical_data,
    _I.REQ_HEAD_TIMESTAMP: ClientSession._h_head_timestamp,
    _I.CANCEL_HEAD_TIMESTAMP: ClientSession._h_noop,
    _I.PLACE_ORDER: ClientSession._h_place_order,
    _I.CANCEL_ORDER: ClientSession._h_cancel_order,
    _I.REQ_GLOBAL_CANCEL: ClientSession._h_global_cancel,
    _I.REQ_OPEN_ORDERS: ClientSession._h_open_orders,
    _I.REQ_ALL_OPEN_ORDERS: ClientSession._h_all_open_orders,
    _I.REQ_COMPLETED_ORDERS: ClientSession._h_completed_orders,
    _I.REQ_EXECUTIONS: ClientSession._h_executions,
    _I.REQ_ACCOUNT_UPDATES: ClientSession._h_account_updates,
    _I.REQ_ACCOUNT_UPDATES_MULTI: ClientSession._h_account_updates_multi,
    _I.CANCEL_ACCOUNT_UPDATES_MULTI: ClientSession._h_noop,
    _I.REQ_ACCOUNT_SUMMARY: ClientSession._h_account_summary,
    _I.CANCEL_ACCOUNT_SUMMARY: ClientSession._h_noop,
    _I.REQ_POSITIONS: ClientSession._h_positions,
    _I.CANCEL_POSITIONS: ClientSession._h_cancel_positions,
    _I.REQ_PNL: ClientSession._h_pnl,
    _I.CANCEL_PNL: ClientSession._h_cancel_pnl,
    _I.REQ_PNL_SINGLE: ClientSession._h_pnl_single,
    _I.CANCEL_PNL_SINGLE: ClientSession._h_cancel_pnl_single,
}
