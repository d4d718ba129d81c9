"""One TWS-API client connection of the simulated gateway: handshake, request handlers, subscriptions.

Split from gateway.py (which owns the exchange, event routing and the tick loop) to keep both readable.
Every ``_h_<name>`` method handles one incoming message id (see ``HANDLERS``); replies are field lists built
by trader/sim/replies.py and written through ``send`` (which honours the reply-delay fault). This module holds
the connection core (I/O, handshake, dispatch, connection and contract requests); the market data/history
handlers live in session_market.py and the order/account handlers in session_orders.py, mixed into
``ClientSession``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from trader.errors import DecodeError, MessageTooLarge
from trader.sim import protobuf as PB
from trader.sim import protocol as P
from trader.sim import replies as R
from trader.sim.models import SimContract
from trader.sim.protocol import NOT_SUPPORTED
from trader.sim.security_ids import sec_id_list
from trader.sim.session_discovery import DiscoveryHandlers
from trader.sim.session_market import MarketDataHandlers, _BarSub, _DepthSub, _HistSub, _MktSub, _TbtSub
from trader.sim.session_orders import OrderAccountHandlers

if TYPE_CHECKING:
    from trader.sim.gateway import SimGateway

log = logging.getLogger(__name__)

MSG_200 = "No security definition has been found for the request"
# requests we recognise but do not simulate → (position of their reqId field, name)
UNSUPPORTED_WITH_REQ_ID = {
    21: (2, "exerciseOptions"), 52: (2, "reqFundamentalData"),
    54: (2, "calculateImpliedVolatility"), 55: (2, "calculateOptionPrice"),
    88: (1, "reqHistogramData"), 96: (1, "reqHistoricalTicks"),
    100: (1, "reqWshMetaData"), 102: (1, "reqWshEventData"),
}
IGNORED = frozenset({12, 13, 14, 19, 53, 56, 57, 65, 66, 67, 68, 69, 70, 72, 73, 74, 75, 80, 89, 101, 103})


class ClientSession(MarketDataHandlers, OrderAccountHandlers, DiscoveryHandlers):
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
        self.scanner_subs: set[int] = set()
        self.hist: dict[int, _HistSub] = {}  # keepUpToDate historical requests
        self.pnl_subs: dict[int, tuple] = {}
        self.pnl_single_subs: dict[int, tuple[int, tuple]] = {}
        self.summary_subs: dict[int, tuple[set[str], dict]] = {}  # reqAccountSummary: tags, last values sent
        self.multi_subs: dict[int, tuple[str, dict]] = {}  # reqAccountUpdatesMulti: model code, last values
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
        data = self.encode(fields)
        delay = self.gw.faults.reply_delay_ms / 1000.0
        if delay <= 0 and not self._delayed:
            self.writer.write(data)
            return
        self._delayed.append((time.monotonic() + delay, data))
        if self._delay_task is None or self._delay_task.done():
            self._delay_task = asyncio.get_running_loop().create_task(self._drain_delayed())

    def encode(self, fields: list[object]) -> bytes:
        """One frame for a reply, in the session's protocol: text below 201; from 201 a binary message id, and
        protobuf for the replies IB sends as protobuf at the negotiated version (trader/sim/protobuf.py)."""
        if self.server_version < PB.PROTOBUF:
            return P.encode_msg(fields, self.server_version)
        if PB.wants(int(fields[0]), self.server_version):  # type: ignore[call-overload]
            try:
                return PB.encode_reply(fields)
            except Exception:  # never drop a reply: the client reads the text form at any version too
                log.exception("client %s: protobuf encoding of %s failed; sending text", self.client_id, fields[:2])
        return PB.encode_text(fields, self.server_version)

    def _request(self, payload: bytes) -> list[str]:
        """The text fields (id first) of one request frame; protobuf requests are translated (ValueError if not)."""
        if self.server_version < PB.PROTOBUF:
            return P.decode_payload(payload)
        if len(payload) < 4:
            raise DecodeError("frame shorter than its message id")
        msg_id = int.from_bytes(payload[:4], "big")
        if msg_id > PB.MSG_ID_OFFSET:
            return PB.request_fields(msg_id - PB.MSG_ID_OFFSET, payload[4:])
        return [str(msg_id), *P.decode_payload(payload[4:])]

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
                try:
                    fields = self._request(await self.reader.readexactly(n))
                except ValueError as exc:  # a protobuf request we cannot read: IB's validation error, no crash
                    self.send(R.error_msg(-1, 321, f"Error validating request: {exc}"))
                    continue
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
        top = PB.MAX_PROTOBUF_VERSION if PB.available() else P.SERVER_VERSION  # 201+ needs ibapi's protobuf
        if high < P.MIN_CLIENT_VERSION or low > top:
            log.warning("client versions v%s..%s outside what we serve; closing", low, high)
            return False
        self.server_version = min(high, top)
        self.writer.write(P.handshake_reply(self.server_version, self.gw.clock.now()))
        return True

    def handle(self, fields: list[str]) -> None:
        """Dispatch one request; any failure becomes an IB-style error, never a dropped connection."""
        try:
            msg_id = int(fields[0])
        except ValueError:
            self.send(R.error_msg(-1, 321, f"Error validating request:-'{fields[0][:20]}' : unparseable id"))
            return
        if not self._ready and msg_id != P.In.START_API:
            self.send(R.error_msg(-1, 321, "Error validating request: startApi must come first"))
            return
        handler = HANDLERS.get(msg_id)
        try:
            if handler is not None:
                handler(self, P.FieldReader(fields, 1))
            elif msg_id in UNSUPPORTED_WITH_REQ_ID:
                pos, name = UNSUPPORTED_WITH_REQ_ID[msg_id]
                req_id = int(fields[pos]) if len(fields) > pos and fields[pos].lstrip("-").isdigit() else -1
                log.info("client %s: %s not supported in the simulator", self.client_id, name)
                self.send(R.error_msg(req_id, NOT_SUPPORTED, f"{name} is not supported in the simulator"))
            elif msg_id in IGNORED:
                log.info("client %s: ignoring request id %s (no effect in the simulator)", self.client_id, msg_id)
            else:
                log.warning("client %s: unknown request id %s", self.client_id, msg_id)
                self.send(R.error_msg(-1, 321, f"Error validating request:-'{msg_id}' : "
                                               "unknown request, not supported in the simulator"))
        except Exception as exc:  # a handler bug answers like IB's validation error
            log.exception("client %s: request %s failed", self.client_id, fields[:3])
            self.send(R.error_msg(-1, 321, f"Error validating request:-'{msg_id}' : {exc}"))

    # ------------------------------------------------------------------ connection
    def _h_start_api(self, r: P.FieldReader) -> None:
        r.skip(1)  # version
        self.client_id = r.int()
        if not self.gw.register(self):
            self.writer.write(self.encode(R.error_msg(
                -1, 326, "Unable to connect as the client id is already in use. Retry with a unique client id.")))
            self.close()
            return
        self._ready = True
        self.send(R.managed_accounts([self.gw.account_id]))
        self.send(R.next_valid_id(self.gw.next_order_id(self.client_id)))
        for code, msg in FARM_OK:
            self.send(R.error_msg(-1, code, msg))

    def _h_req_ids(self, r: P.FieldReader) -> None:
        self.send(R.next_valid_id(self.gw.next_order_id(self.client_id)))

    def _h_current_time(self, r: P.FieldReader) -> None:
        self.send(R.current_time(int(self.gw.clock.now().timestamp())))

    def _h_current_time_in_millis(self, r: P.FieldReader) -> None:
        self.send(R.current_time_in_millis(int(self.gw.clock.now().timestamp() * 1000)))

    def _h_managed_accts(self, r: P.FieldReader) -> None:
        self.send(R.managed_accounts([self.gw.account_id]))

    def _h_market_data_type(self, r: P.FieldReader) -> None:
        pass  # simulated data is always "live" (type 1); IB answers per request with marketDataType

    def _h_noop(self, r: P.FieldReader) -> None:
        pass

    def _h_user_info(self, r: P.FieldReader) -> None:
        self.send(R.user_info(r.int()))

    # ------------------------------------------------------------------ contracts
    def _contract_or_200(self, req_id: int, spec: P.ContractSpec) -> SimContract | None:
        found = self.gw.resolve(spec)
        if len(found) == 1:
            return found[0]
        if not found:
            self.send(R.error_msg(req_id, 200, MSG_200))
        else:
            self.send(R.error_msg(req_id, 200, "The contract description specified is ambiguous"))
        return None

    def _h_contract_details(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id = r.int()
        found = self.gw.resolve(r.contract())
        if not found:
            self.send(R.error_msg(req_id, 200, MSG_200))
            return
        for c in found:
            self.send(self._details(req_id, c))
        self.send(R.contract_details_end(req_id))

    def _details(self, req_id: int, c: SimContract) -> list[object]:
        trading, liquid = c.trading_hours, c.liquid_hours
        if not trading:
            trading, liquid = self.gw.market.hours_text(c.con_id)
        under = self.gw.universe.by_con_id(c.underlying_con_id) if c.underlying_con_id else None
        return R.contract_details(
            req_id, self.gw.wire(c), market_name=c.market_name or c.trading_class, min_tick=c.min_tick,
            order_types=c.order_types, valid_exchanges=c.valid_exchanges or c.exchange,
            price_magnifier=c.price_magnifier, under_con_id=c.underlying_con_id, long_name=c.long_name,
            contract_month=c.contract_month, industry=c.industry, category=c.category,
            subcategory=c.subcategory, time_zone=c.time_zone, trading_hours=trading, liquid_hours=liquid,
            under_symbol=c.underlying_symbol or (under.symbol if under else ""),
            under_sec_type=c.underlying_sec_type or (under.sec_type if under else ""),
            stock_type="COMMON" if c.sec_type == "STK" else "",
            sec_ids=sec_id_list(c.sec_type, c.symbol, c.currency, c.con_id), md_size_multiplier=c.md_size_multiplier)

    def _h_matching_symbols(self, r: P.FieldReader) -> None:
        req_id, pattern = r.int(), r.str()
        rows = [(self.gw.wire(c), self.gw.universe.derivative_sec_types(c.con_id), c.long_name)
                for c in self.gw.universe.search(pattern)]
        self.send(R.symbol_samples(req_id, rows))

    def _h_sec_def_opt_params(self, r: P.FieldReader) -> None:
        req_id, _sym, _fut_exchange, _sec_type, under_con_id = r.int(), r.str(), r.str(), r.str(), r.int()
        for exchange, tc, mult, exps, strikes in self.gw.universe.option_chain(under_con_id):
            self.send(R.sec_def_opt_params(req_id, exchange, under_con_id, tc, mult, exps, strikes))
        self.send(R.sec_def_opt_params_end(req_id))

    def _h_market_rule(self, r: P.FieldReader) -> None:
        rule_id = r.int()
        self.send(R.market_rule(rule_id, [(0.0, 0.01)]))

    def _h_depth_exchanges(self, r: P.FieldReader) -> None:
        self.send(R.mkt_depth_exchanges([("SMART", "STK", "", "Deep", 1), ("GLOBEX", "FUT", "", "Deep", 1),
                                         ("IDEALPRO", "CASH", "", "Deep", 1)]))



FARM_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


_I = P.In
HANDLERS = {
    _I.START_API: ClientSession._h_start_api,
    _I.REQ_IDS: ClientSession._h_req_ids,
    _I.REQ_CURRENT_TIME: ClientSession._h_current_time,
    _I.REQ_CURRENT_TIME_IN_MILLIS: ClientSession._h_current_time_in_millis,
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
    22: ClientSession._h_scanner_subscription,  # scanner and news: trader/sim/session_discovery.py
    23: ClientSession._h_cancel_scanner_subscription,
    24: ClientSession._h_scanner_parameters,
    84: ClientSession._h_news_article,
    86: ClientSession._h_historical_news,
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
    _I.CANCEL_ACCOUNT_UPDATES_MULTI: ClientSession._h_cancel_account_updates_multi,
    _I.REQ_ACCOUNT_SUMMARY: ClientSession._h_account_summary,
    _I.CANCEL_ACCOUNT_SUMMARY: ClientSession._h_cancel_account_summary,
    _I.REQ_POSITIONS: ClientSession._h_positions,
    _I.CANCEL_POSITIONS: ClientSession._h_cancel_positions,
    _I.REQ_PNL: ClientSession._h_pnl,
    _I.CANCEL_PNL: ClientSession._h_cancel_pnl,
    _I.REQ_PNL_SINGLE: ClientSession._h_pnl_single,
    _I.CANCEL_PNL_SINGLE: ClientSession._h_cancel_pnl_single,
}
