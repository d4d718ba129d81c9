"""The live runner's fills, caps and reads (`LiveRunner` mixes it in): its strategies' fills, attributed through
the orders they caused, kept current from trader_service's published fill events (the caps) and read from its
store as the backstop; and the `strategies` RPCs' rows, P&L, signals and decisions."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

_log = logging.getLogger(__name__)

EVENT_SIGNAL = "strategy_signal"
EVENT_ORDER = "strategy_order"  # an approval that was sent: payload has strategy, con_id, side, quantity
EVENT_REFUSED = "strategy_order_refused"


class LiveReads:
    """Fills, caps and reads of `trader.strategy.live.LiveRunner` (its attributes: runtime, caps, clock, events,
    positions, _trader, _proposals, _fill_events, _fill_cursor, _fill_lock, _caps_read)."""

    runtime: Any
    caps: Any
    clock: Any
    events: Any
    positions: dict[tuple[str, int], float]
    _trader: Any
    _proposals: list[dict[str, Any]]
    _fill_events: dict[str, list[dict[str, Any]]]
    _fill_cursor: dict[str, int]
    _fill_lock: Any
    _caps_read: bool

    async def _refresh_caps(self, now: datetime) -> None:
        """The caps' fills: every strategy's attributed fills, read incrementally from trader_service's store."""
        try:
            fills = await asyncio.wait_for(self.attributed_fills(), 5.0)
        except Exception as exc:  # noqa: BLE001 - keep the last known fills; in-flight orders still count
            _log.warning("strategy fills unreadable, caps use the last known fills: %s", exc)
            return
        self._caps_read = True
        self.caps.update([f for rows in fills.values() for f in rows], now)

    def _on_fill_event(self, msg: Any) -> None:
        """A fill or commission trader_service published as it recorded it: the caps count it now. The same event
        read from the store later counts once (`attribute` keys executions by exec id)."""
        try:
            kind = str(msg["kind"])
            row = {"correlation_id": str(msg["correlation_id"]), "payload": dict(msg["payload"])}
        except (KeyError, TypeError, ValueError):
            return
        if kind not in self._fill_events:
            return
        self._fill_events[kind].append(row)
        fills = self._attributed()
        self.caps.update([f for rows in fills.values() for f in rows], self.clock.now())

    # ------------------------------------------------------------------ reads (RPC)
    def rows(self) -> list[dict[str, Any]]:
        """`strategies`: every strategy with its state, last bar, last signal, and ``ordered``: the signed
        quantities of the orders it sent per conId (the caps' count; positions come from fills, `pnl`)."""
        out = []
        for row in self.runtime.rows():
            row["ordered"] = {str(c): q for (n, c), q in self.positions.items() if n == row["name"] and q}
            out.append(row)
        return out

    def marks(self) -> dict[int, float]:
        """The latest bar close the runtime saw per conId (the P&L mark)."""
        out: dict[int, float] = {}
        for live in list(self.runtime.strategies.values()):  # a copy: the dispatch thread may install
            for con_id, slot in live.slots.items():
                if slot.n:
                    out[con_id] = float(slot._cols["close"][slot.n - 1])
        return out

    async def attributed_fills(self, name: str | None = None) -> dict[str, list[Any]]:
        """Every strategy's fills (or one's), attributed through its proposals' order refs
        (`trader.strategy.attribution`): strategy name → fills, oldest first."""
        if not any(name is None or p.get("strategy") == name for p in self._proposals):
            return {}
        async with self._fill_lock:  # only the events after the last read cross the wire
            for kind, rows in self._fill_events.items():
                while True:
                    new = await self._trader.call("events", kind=kind, since_id=self._fill_cursor[kind], limit=5000)
                    rows.extend(new)
                    if new:
                        self._fill_cursor[kind] = max(r["id"] for r in new)
                    if len(new) < 5000:
                        break
        return self._attributed(name)

    def _attributed(self, name: str | None = None) -> dict[str, list[Any]]:
        """The fill events held (read from the store, or published) attributed: strategy name → fills."""
        from trader.strategy.attribution import attribute

        props = [p for p in self._proposals if name is None or p.get("strategy") == name]
        out: dict[str, list[Any]] = {}
        for f in attribute(props, self._fill_events["fill"], self._fill_events["commission"]):
            out.setdefault(f.strategy, []).append(f)
        return out

    async def pnl(self, name: str | None = None) -> dict[str, dict[str, Any]]:
        """Position and P&L per strategy from its fills (`strategy_pnl`); every deployed strategy has a row."""
        from trader.strategy.attribution import strategy_pnl

        fills = await self.attributed_fills(name)
        names = [name] if name is not None else sorted(set(self.runtime.strategies) | set(fills))
        marks, today = self.marks(), self.clock.now().date()
        return {n: strategy_pnl(fills.get(n, []), marks, today) for n in names}

    def signals(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """A strategy's recent signals, newest first (blocking store read)."""
        found = [e for e in self.events.read(kind=EVENT_SIGNAL, newest_first=True, limit=100_000)
                 if e.payload.get("strategy") == name]
        return [{"id": e.id, "ts": e.ts, **e.payload} for e in found[:limit]]

    def decisions(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """What became of a strategy's signals: proposals, orders sent, refusals (newest first)."""
        out = []
        for kind in ("strategy_proposal", EVENT_ORDER, EVENT_REFUSED):
            out += [{"id": e.id, "ts": e.ts, "kind": kind, **e.payload}
                    for e in self.events.read(kind=kind, limit=100_000) if e.payload.get("strategy") == name]
        return sorted(out, key=lambda r: r["id"], reverse=True)[:limit]
