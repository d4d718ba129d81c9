"""trader_service's side of the LLM pipeline: market facts from the broker, daily bars for ATR/ADV and
correlations (cached in DuckDB), and the read models ``portfolio-risk``, ``portfolio-snapshot``,
``portfolio-diff`` and ``session``.

The proposal logic itself is `trader.trading.pipeline_service.ProposalPipeline`; the pure maths is in
`trader.trading` (sizing, portfolio_risk, snapshot). This module only fetches and caches inputs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from trader.config import PositionSizingConfig, TradingFiltersConfig
from trader.data.objects import ObjectStore
from trader.data.proposals import GroupStore
from trader.trading.models import AccountSnapshot, Action, Position
from trader.trading.orders import OrderRequest
from trader.trading.proposals import Proposal
from trader.trading.snapshot import OrderSummary

log = logging.getLogger(__name__)

__all__ = ["BrokerFacts"]

# Daily bars older than this are not worth caching for the next call (ATR over ~14 days, ADV over 20).
_BARS_DURATION = "60 D"
_BARS_TIMEOUT = 10.0


class BrokerFacts:
    """Prices, positions, account, open orders and daily bars from the broker adapter, for the pipeline."""

    def __init__(self, broker: Any, session: Any, objects: ObjectStore, groups: GroupStore,
                 sizing_cfg: PositionSizingConfig, filters: TradingFiltersConfig, *,
                 groups_list: Callable[[], Awaitable[list[Any]]] | None = None) -> None:
        self.broker = broker
        # trader_service's in-memory copy of the groups (it is their only writer): the what-if of every proposal
        # reads them, and a DuckDB read waits behind the previous batch's journal flush (~0.1-0.6 s).
        self.groups_list = groups_list
        self.session = session
        self.objects = objects
        self.groups = groups
        self.sizing_cfg = sizing_cfg
        self.filters = filters
        # Daily bars already read today, per cache key: sizing and the what-if read them for every proposal (a
        # bar close's batch proposes dozens at once), and each object-store read is a DuckDB open (~20 ms).
        self._daily: dict[str, list[dict[str, float]]] = {}
        # ATR and ADV of those bars (the same for every proposal of the day on the contract), per cache key.
        self._atr_adv: dict[str, tuple[float | None, float | None]] = {}
        # Their daily returns, per cache key: every what-if reads those of the whole book.
        self._returns: dict[str, tuple[float, ...]] = {}
        self._returns_key: dict[str, str] = {}  # symbol → the cache key of its returns (its conId, the day)
        # The book's correlation structure (matrix and clusters) per ordered symbol list and thresholds, with the
        # returns it was computed from: valid while each symbol's returns are the same (the day's) objects.
        self._structures: dict[Any, tuple[tuple[Any, ...], Any]] = {}

    # ------------------------------------------------------------------ MarketPort
    async def quote(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                    currency: str = "USD") -> tuple[dict[str, Any], dict[str, Any]]:
        """(contract, quote) for a symbol."""
        contract = await self.broker.resolve(symbol, sec_type, exchange, currency)
        return contract, await self.broker.snapshot_contract(contract)

    async def price(self, symbol: str, sec_type: str, exchange: str, currency: str) -> float | None:
        """Last, else midpoint, else close (None if the broker has nothing)."""
        contract = await self.broker.resolve(symbol, sec_type, exchange, currency)
        req = OrderRequest(symbol=symbol, action=Action.BUY, quantity=1, sec_type=sec_type, exchange=exchange,
                           currency=currency)
        return await self.broker.price(contract, req)

    def positions(self) -> list[Position]:
        """Current positions (fails if the broker is not connected)."""
        self.session.require_ready(opening=False)
        return list(self.broker.positions())

    def account(self) -> AccountSnapshot:
        """Account figures (NLV, cash, day P&L)."""
        return self.broker.account()

    def order_summaries(self) -> list[OrderSummary]:
        """Every order of this session (open and done) in the snapshot's compact form."""
        out = []
        for t in self.session.ib.trades():
            o, s = t.order, t.orderStatus
            try:
                out.append(OrderSummary(
                    order_id=int(o.orderId), symbol=t.contract.symbol, action=Action(o.action),
                    quantity=float(o.totalQuantity), order_type=o.orderType,
                    limit_price=_finite(o.lmtPrice) if o.orderType in ("LMT", "STP LMT") else None,
                    status=s.status, filled=float(s.filled or 0.0), avg_fill_price=_finite(s.avgFillPrice) or None))
            except (ValueError, TypeError):  # an order of a kind the snapshot does not model
                continue
        return out

    # ------------------------------------------------------------------ daily bars (cached)
    async def daily_bars(self, contract: dict[str, Any]) -> list[dict[str, float]]:
        """~60 daily bars (open/high/low/close/volume) for a resolved contract, cached per conId and day. The
        checks of one batch (`quote_scope.shared_reads`) that miss the cache share one read of a contract's bars
        (sizing and the what-if of each of its proposals ask for them at once)."""
        from trader.trading.quote_scope import shared

        key = _daily_key(contract)
        if key in self._daily:
            return self._daily[key]
        return await shared(("daily_bars", key), lambda: self._read_daily_bars(contract, key))

    async def _read_daily_bars(self, contract: dict[str, Any], key: str) -> list[dict[str, float]]:
        """The bars the object store holds under ``key``, else the broker's (then stored)."""
        cached = await asyncio.to_thread(self.objects.get, key)  # store work never runs on the event loop
        if cached is not None:
            return self._remember(key, cached)
        ib_contract = await self.broker.resolver.qualified(contract)
        try:
            bars = await asyncio.wait_for(self.session.ib.reqHistoricalDataAsync(
                ib_contract, "", _BARS_DURATION, "1 day", "TRADES", True), _BARS_TIMEOUT)
        except TimeoutError:
            log.warning("no daily bars for conId %s within %.0f s", contract.get("con_id"), _BARS_TIMEOUT)
            return []
        rows = [{"open": float(b.open), "high": float(b.high), "low": float(b.low), "close": float(b.close),
                 "volume": float(b.volume)} for b in bars or []]
        if rows:
            await asyncio.to_thread(functools.partial(self.objects.put, key, rows, kind="daily_bars"))
            self._remember(key, rows)
        return rows

    def _remember(self, key: str, rows: list[dict[str, float]]) -> list[dict[str, float]]:
        today = key.rsplit(":", 1)[1]
        if any(not k.endswith(today) for k in self._daily):  # a new day: yesterday's bars are stale
            self._daily = {k: v for k, v in self._daily.items() if k.endswith(today)}
            self._atr_adv = {k: v for k, v in self._atr_adv.items() if k.endswith(today)}
            self._returns = {k: v for k, v in self._returns.items() if k.endswith(today)}
            self._structures.clear()
        self._daily[key] = rows
        self._atr_adv.pop(key, None)
        return rows

    async def atr_adv(self, contract: dict[str, Any]) -> tuple[float | None, float | None]:
        """Wilder ATR and the average daily volume of the contract's daily bars (None without 2 bars); computed
        once per day's cached bars."""
        from trader.trading.sizing import average_daily_volume, wilder_atr

        bars = await self.daily_bars(contract)
        key = _daily_key(contract)
        cacheable = self._daily.get(key) is bars  # not an empty answer (never cached) or a new day's first read
        if cacheable and key in self._atr_adv:
            return self._atr_adv[key]
        atr = adv = None
        if len(bars) >= 2:
            atr = wilder_atr([b["high"] for b in bars], [b["low"] for b in bars], [b["close"] for b in bars])
            adv = average_daily_volume([b["volume"] for b in bars])
        if cacheable:
            self._atr_adv[key] = (atr, adv)
        return atr, adv

    # ------------------------------------------------------------------ sizing
    async def size(self, p: Proposal, price: float) -> Any:
        """Size a proposal with `size_position` from ATR/ADV of its daily bars and the current spread."""
        from trader.trading.sizing import SizingInputs, size_position, win_loss_ratio_from_bracket

        if p.legs:  # a spread: one unit risks its defined max loss, so that is its "price" to size with
            from trader.trading.combos import max_loss

            per_unit = max_loss(p.legs, p.action, price)
            if not (per_unit > 0 and math.isfinite(per_unit)):
                from trader.errors import InvalidProposal

                raise InvalidProposal(f"{p.symbol}: the combo has no finite max loss to size by ({per_unit})")
            return size_position(SizingInputs(price=per_unit, confidence=p.confidence,
                                              nlv=self.account().net_liquidation), self.sizing_cfg, self.filters)
        contract, quote = await self.quote(p.symbol, p.sec_type, p.exchange, p.currency)
        atr, adv = await self.atr_adv(contract)
        ratio = None
        if p.take_profit is not None and p.stop_loss is not None:
            ratio = win_loss_ratio_from_bracket(price, p.take_profit, p.stop_loss)
        held = sum(abs(pos.market_value or 0.0) for pos in self.positions() if pos.symbol == p.symbol
                   and (pos.quantity > 0) == (p.action is Action.BUY))
        inputs = SizingInputs(price=price, confidence=p.confidence, atr=atr, adv_shares=adv,
                              bid=quote.get("bid"), ask=quote.get("ask"), nlv=self.account().net_liquidation,
                              existing_value_usd=held, win_loss_ratio=ratio)
        return size_position(inputs, self.sizing_cfg, self.filters)

    # ------------------------------------------------------------------ risk
    async def daily_returns(self, symbols: list[str]) -> dict[str, Sequence[float]]:
        """Close-to-close daily returns per symbol (symbols without bars are left out). The checks of one batch
        (`quote_scope.shared_reads`) share each symbol's: every proposal's what-if asks for those of the whole
        book."""
        from trader.trading.quote_scope import shared

        out: dict[str, Sequence[float]] = {}
        today = datetime.now(UTC).date().isoformat()
        for sym in symbols:
            key = self._returns_key.get(sym, "")
            if key.endswith(today) and key in self._returns:  # the day's, known: no read to share
                out[sym] = self._returns[key]
                continue
            try:
                out[sym] = await shared(("daily_returns", sym), lambda sym=sym: self._returns_of(sym))
            except Exception as exc:  # a symbol the broker cannot resolve just has no correlations
                log.info("no returns for %s: %s", sym, exc)
        return out

    async def _returns_of(self, symbol: str) -> tuple[float, ...]:
        contract = await self.broker.resolve(symbol)
        bars = await self.daily_bars(contract)
        key = _daily_key(contract)
        cacheable = self._daily.get(key) is bars  # as `atr_adv`: only the day's cached bars
        if cacheable and key in self._returns:
            return self._returns[key]
        closes = [b["close"] for b in bars]
        out = tuple(b / a - 1.0 for a, b in zip(closes, closes[1:], strict=False) if a)
        if cacheable:
            self._returns[key] = out
            self._returns_key[symbol] = key
        return out

    def correlation_structure(self, symbols: tuple[str, ...], returns: Mapping[str, Sequence[float]],
                              thresholds: Any) -> Any:
        """`portfolio_risk.correlation_structure`, kept across batches while every symbol's returns are the same
        objects (the day's, `_returns_of`): a bar close's first what-if reuses the previous close's."""
        from trader.trading.portfolio_risk import correlation_structure

        upper = {k.upper(): v for k, v in returns.items()}  # as correlation_structure looks them up
        refs = tuple(upper.get(s) for s in symbols)
        key = (symbols, thresholds)
        known = self._structures.get(key)
        if known is not None and all(a is b for a, b in zip(known[0], refs, strict=True)):
            return known[1]
        structure = correlation_structure(symbols, returns, thresholds)
        if len(self._structures) >= 64:  # books change slowly; a bound all the same
            self._structures.clear()
        self._structures[key] = (refs, structure)
        return structure

    async def risk_inputs(self, extra_symbols: tuple[str, ...] = ()) -> Any:
        """`RiskInputs` for the current book (positions, NLV, groups, daily returns)."""
        from trader.trading.portfolio_risk import RiskInputs
        from trader.trading.quote_scope import shared, shared_now

        positions = tuple(self.positions())
        # The book's part once per batch (`quote_scope.shared_reads`: the same positions for every check).
        held = shared_now(("risk_held", len(positions)), lambda: sorted({p.symbol for p in positions if p.quantity}))
        nlv = self.account().net_liquidation
        if self.groups_list is not None:
            groups = await self.groups_list()
        else:
            groups = await shared(("position_groups",), lambda: asyncio.to_thread(self.groups.list))  # once per batch
        # The book's returns: one await per batch's check for all of them (not one per held symbol), then the rest.
        book = await shared(("book_returns", tuple(held)), lambda: self.daily_returns(held))
        extra = set(extra_symbols).difference(held)
        returns = book if not extra else {**book, **await self.daily_returns(sorted(extra))}
        return RiskInputs(positions=positions, nlv=nlv, groups=tuple(groups),
                          returns=returns if returns is book else {s: returns[s] for s in sorted(returns)})

    async def risk_report(self) -> dict[str, Any]:
        """The portfolio-risk report as a dict."""
        from trader.trading.portfolio_risk import portfolio_risk

        i = await self.risk_inputs()
        return portfolio_risk(list(i.positions), i.nlv, i.groups, i.returns, i.thresholds).to_dict()

    async def what_if(self, p: Proposal, price: float | None) -> dict[str, Any] | None:
        """The risk delta of adding the proposal's position (None when it cannot be valued). The report of the
        book before it is computed once per batch (`quote_scope.shared_reads`) for the same book."""
        from trader.trading.groups import values_by_symbol
        from trader.trading.portfolio_risk import portfolio_risk
        from trader.trading.quote_scope import shared_now
        from trader.trading.what_if_delta import BookBefore, what_if_delta

        if price is None:
            return None
        qty = p.quantity if p.quantity is not None else (p.amount_usd or 0.0) / price
        signed = qty if p.action is Action.BUY else -qty
        i = await self.risk_inputs((p.symbol,))
        if i.nlv is None or not i.nlv > 0:
            return None
        new = Position(symbol=p.symbol, quantity=signed, avg_cost=price, market_price=price,
                       multiplier=p.multiplier)  # an option's premium × 100, a future's price × its multiplier
        # The report of the book before the trade, once per batch: inside one (the only place shared_now keeps
        # anything) every check reads the same positions, NLV, groups and returns (`quote_scope`), and that
        # report reads only the held symbols' returns (the book's, `risk_inputs`), whatever the proposal.
        book = ("risk_before", i.nlv, i.thresholds, len(i.positions), len(i.groups))

        def correlations(symbols: tuple[str, ...]) -> Any:  # the book's, and the book + one symbol's: per batch
            return shared_now(("risk_correlations", symbols, i.thresholds),
                              lambda: self.correlation_structure(symbols, i.returns or {}, i.thresholds))

        def read_book() -> BookBefore:
            before = portfolio_risk(i.positions, i.nlv, i.groups, i.returns, i.thresholds, correlations)
            return BookBefore(i, before, values_by_symbol(i.positions), correlations)

        # = what_if(i, new, ...).to_dict(); i and correlations also read this trade's symbol's returns
        return what_if_delta(shared_now(book, read_book), new, i, correlations)

    # ------------------------------------------------------------------ snapshot / diff / session
    def snapshot(self, *, max_positions: int | None = None) -> dict[str, Any]:
        """The compact portfolio snapshot."""
        from trader.trading.snapshot import portfolio_snapshot

        return portfolio_snapshot(self.account(), self.positions(), self.order_summaries(), datetime.now(UTC),
                                  max_positions=max_positions)

    def diff(self, since_key: str = "default", current: dict[str, Any] | None = None) -> dict[str, Any]:
        """What changed since this caller's previous snapshot (``current``, or taken now); stores the new one
        under ``since_key``."""
        from trader.trading.snapshot import portfolio_diff

        key = f"psnap:{since_key}"
        current = self.snapshot() if current is None else current
        previous = self.objects.get(key)
        self.objects.put(key, current, kind="portfolio_snapshot")
        if previous is None:
            return {"first": True, "message": "first snapshot for this key: call again to see changes",
                    "snapshot": current}
        return portfolio_diff(previous, current)

    def session_summary(self, orders_in_window: int | None = None) -> dict[str, Any]:
        """Sizing config, the gate's position limit, remaining daily loss, open-order and order-rate capacity."""
        from trader.trading.snapshot import session_summary

        return session_summary(self.sizing_cfg, self.filters, self.account(), len(self.session.ib.openTrades()),
                               orders_in_window)


def _daily_key(contract: dict[str, Any]) -> str:
    """The cache key of a contract's daily bars: its conId and today's date (UTC)."""
    return f"bars1d:{int(contract.get('con_id') or 0)}:{datetime.now(UTC).date().isoformat()}"


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and abs(f) < 1e300 else None
