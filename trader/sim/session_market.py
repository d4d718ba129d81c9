"""Market data and history request handlers of a simulated-gateway client session (mixed into ClientSession).

Quotes, tick-by-tick, depth, 5-second bars and historical bars; the subscriptions these keep are pushed by
the gateway's tick loop through ``push_market_data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from trader.errors import DecodeError
from trader.sim import protocol as P
from trader.sim import replies as R
from trader.sim.faults import MSG_PACING
from trader.sim.models import Quote, SimContract
from trader.sim.protocol import NOT_SUPPORTED

BAR_SECONDS = {
    "sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600,
    "day": 86400, "days": 86400, "week": 7 * 86400, "weeks": 7 * 86400, "month": 30 * 86400, "months": 30 * 86400,
}
DURATION_SECONDS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
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


class MarketDataHandlers:
    """Market data, depth, real-time bar and history handlers; needs ClientSession's state and ``send``."""

    # ------------------------------------------------------------------ market data
    def _h_mkt_data(self, r: P.FieldReader) -> None:
        r.skip(1)
        req_id = r.int()
        spec = r.contract()
        if spec.sec_type == "BAG":
            self.send(R.error_msg(req_id, NOT_SUPPORTED, "combo market data is not supported in the simulator"))
            return
        if r.bool():  # delta-neutral contract
            r.skip(3)
        _generic, snapshot = r.str(), r.bool()
        if req_id in self.mkt:
            self.send(R.error_msg(req_id, 322, f"Duplicate ticker id {req_id}"))
            return
        c = self._contract_or_200(req_id, spec)
        if c is None:
            return
        self.send(R.market_data_type(req_id, 1))
        self.send(R.tick_req_params(req_id, c.min_tick, "9c0001", 3))
        sub = _MktSub(c.con_id)
        if self.gw.faults.market_data_paused():
            if snapshot:
                self.send(R.tick_snapshot_end(req_id))
            else:
                self.mkt[req_id] = sub
            return
        self._push_ticks(req_id, sub, self.gw.market.quote(c.con_id), c)
        if snapshot:
            self.send(R.tick_snapshot_end(req_id))
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
            # a rising quote moves its ask first (a falling one its bid), so a client that builds the book tick
            # by tick (nautilus' QuoteTick, a Ticker) never sees it crossed or locked in between
            prev_bid = sub.sent.get(T.BID)
            if prev_bid is not None and q.bid > prev_bid[0]:
                ticks[0], ticks[1] = ticks[1], ticks[0]
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
                self.send(R.tick_size(req_id, SIZE_TICK[tick_type], size))
            elif price > 0:
                self.send(R.tick_price(req_id, tick_type, price, size))
                if tick_type == T.LAST:
                    self.send(R.tick_string(req_id, T.LAST_TIMESTAMP, str(int(q.time.timestamp()))))
        if c.sec_type != "CASH" and sent.get(T.VOLUME) != (q.volume, None):
            sent[T.VOLUME] = (q.volume, None)
            self.send(R.tick_size(req_id, T.VOLUME, q.volume))
        if c.sec_type in ("OPT", "FOP"):  # the model's IV and greeks (Black-Scholes, the same as its quotes)
            g = self.gw.market.option_greeks(c.con_id, q.time)
            key = (round(g["optPrice"], 6), round(g["undPrice"], 6))
            if sent.get(T.MODEL_OPTION) != (key, None):
                sent[T.MODEL_OPTION] = (key, None)
                self.send(R.tick_option_computation(req_id, T.MODEL_OPTION, g["impliedVol"], g["delta"],
                                                    g["optPrice"], g["pvDividend"], g["gamma"], g["vega"],
                                                    g["theta"], g["undPrice"]))

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
                    self.send(R.historical_data_update(req_id, row))
        epoch = int(now.timestamp())
        for req_id, b in list(self.bars.items()):
            while b.next_end <= epoch:
                end = datetime.fromtimestamp(b.next_end, UTC)
                bars = market.history(b.con_id, end, 5, 5, b.what, b.use_rth)
                if bars:
                    bar = bars[-1]
                    self.send(R.real_time_bar(req_id, int(bar.time.timestamp()), bar.open, bar.high, bar.low,
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
            self.send(R.error_msg(req_id, 10190, f"Invalid tick-by-tick type {kind!r}"))
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
                self.send(R.tick_by_tick_bid_ask(req_id, epoch, *key))
        elif sub.kind == "MidPoint":
            if (q.mid,) != sub.last:
                sub.last = (q.mid,)
                self.send(R.tick_by_tick_mid(req_id, epoch, q.mid))
        else:
            key = (q.last, q.volume)
            if key != sub.last:
                sub.last = key
                self.send(R.tick_by_tick_last(req_id, 1 if sub.kind == "Last" else 2, epoch, q.last,
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
                self.send(R.market_depth(req_id, pos, 0, side, price, size))
            elif (side, pos, price, size) not in sub.sent:
                self.send(R.market_depth(req_id, pos, 1, side, price, size))
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
            self.send(R.error_msg(req_id, 162, MSG_PACING))
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
            self.send(R.error_msg(req_id, 321, f"Error validating request:-'bP' : cause - {exc}"))
            return
        bars = self.gw.market.history(c.con_id, end, dur_s, bar_s, what.upper(), use_rth)
        if not bars:
            self.send(R.error_msg(req_id, 162, "Historical Market Data Service error message:HMDS query "
                                               "returned no data"))
            return
        daily = bar_s >= 86400
        rows = [(_bar_date(b.time, daily, format_date), b.open, b.high, b.low, b.close, b.volume, b.wap, b.count)
                for b in bars]
        start = end - _td(dur_s)
        self.send(R.historical_data(req_id, P.ib_time(start), P.ib_time(end), rows))
        if self.server_version >= R.HISTORICAL_DATA_END:  # the range moved to its own end message
            self.send(R.historical_data_end(req_id, P.ib_time(start), P.ib_time(end)))
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
        self.send(R.head_timestamp(req_id, stamp))


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
