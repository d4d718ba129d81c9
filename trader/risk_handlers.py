"""trader_service's risk-settings RPCs and proposal read models (a mixin, like `trader.order_handlers`).

``risk_limits`` shows the gate's limits as the running gate uses them and today's usage; ``risk_set`` and
``filter_edit`` change ``trading_filters.yaml`` (validated with the config's own bounds, written to the user's
file, audited as ``risk_setting_changed``) and take effect at once: the gate, the proposal pipeline and the
session summary all read the one ``TradingFiltersConfig`` replaced here. Proposals are shown with their fills
from the fill ledger, so an executed proposal shows what filled and at what average price.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from trader.messaging.rpc import rpcmethod


class RiskHandlers:
    """Risk settings and proposal reads (mixin for TraderService)."""

    # ------------------------------------------------------------------ usage
    def _orders_in_window(self) -> int:
        """Orders submitted within the order-rate window (the count the gate uses)."""
        since = datetime.now(UTC) - timedelta(seconds=self.filters.order_window_seconds)
        while self._submitted and self._submitted[0] <= since:
            self._submitted.popleft()
        return len(self._submitted)

    def _apply_filters(self, new: Any) -> None:
        """Make ``new`` the limits every reader uses, from the next order on (no restart)."""
        self.filters = new
        self.gate.filters = new
        self.facts.filters = new
        self.pipeline.max_quantity = new.max_order_quantity

    @rpcmethod
    def risk_limits(self) -> dict[str, Any]:
        """The risk gate's limits and today's usage (position size, daily loss, open orders, order rate)."""
        from trader.trading.snapshot import risk_limits

        ready = self.session is not None and self.session.ready
        account = self.broker.account() if ready else None
        open_orders = len(self.session.ib.openTrades()) if ready else None
        halted = self.gate.halted_day
        if account is None:
            from trader.trading.models import AccountSnapshot

            account = AccountSnapshot(net_liquidation=None)
        out = risk_limits(self.filters, account, open_orders, self._orders_in_window(),
                          halted.isoformat() if halted else None)
        out["file"] = str(self.paths.config_dir / "trading_filters.yaml")
        return out

    async def _change(self, new: Any, keys: list[str], what: dict[str, Any]) -> dict[str, Any]:
        from trader.trading.risk_settings import write_settings

        old = {k: getattr(self.filters, k) for k in keys}
        path = self.paths.config_dir / "trading_filters.yaml"
        await asyncio.to_thread(write_settings, path, new, keys)
        self._apply_filters(new)
        payload = {**what, "old": old, "new": {k: getattr(new, k) for k in keys}, "file": str(path)}
        await self.audit.durable("risk_setting_changed", payload, source=self.name)
        return {**payload, "limits": self.risk_limits()["limits"]}

    @rpcmethod
    async def risk_set(self, key: str, value: str) -> dict[str, Any]:
        """Set one risk limit (``trading_filters.yaml``), validated, persisted, audited, in force at once."""
        from trader.trading.risk_settings import set_limit

        new = set_limit(self.filters, str(key), str(value))
        return await self._change(new, [str(key)], {"key": str(key), "value": str(value)})

    @rpcmethod
    async def filter_edit(self, action: str, list_name: str, values: list[str]) -> dict[str, Any]:
        """Add symbols/exchanges to (or remove them from) an allow/deny list; persisted, audited, in force."""
        from trader.trading.risk_settings import edit_list

        new = edit_list(self.filters, str(list_name), str(action), [str(v) for v in values or ()])
        return await self._change(new, [str(list_name)], {"action": str(action), "list": str(list_name),
                                                          "values": [str(v).upper() for v in values or ()]})

    # ------------------------------------------------------------------ sizing (session set / reset)
    async def _change_sizing(self, new: Any, what: dict[str, Any]) -> dict[str, Any]:
        from trader.trading.risk_settings import SIZING_KEYS, write_settings
        from trader.trading.snapshot import session_summary

        old = {k: getattr(self.facts.sizing_cfg, k) for k in SIZING_KEYS}
        path = self.paths.config_dir / "position_sizing.yaml"
        await asyncio.to_thread(write_settings, path, new, SIZING_KEYS)
        self.facts.sizing_cfg = new  # the sizer reads it on every proposal: in force at once
        changed = {k: getattr(new, k) for k in SIZING_KEYS if getattr(new, k) != old[k]}
        payload = {**what, "old": {k: old[k] for k in changed}, "new": changed, "file": str(path)}
        await self.audit.durable("sizing_changed", payload, source=self.name)
        from trader.trading.models import AccountSnapshot

        return {**payload, "sizing": session_summary(new, self.filters, AccountSnapshot(net_liquidation=None),
                                                     0)["sizing"]}

    @rpcmethod
    async def session_set(self, key: str, value: str) -> dict[str, Any]:
        """Set one sizing setting (``position_sizing.yaml``: method, base/min/max position, risk multiplier,
        max % of NLV), validated, persisted, audited, used from the next proposal on."""
        from trader.trading.risk_settings import set_sizing

        new = set_sizing(self.facts.sizing_cfg, str(key), str(value))
        return await self._change_sizing(new, {"key": str(key), "value": str(value)})

    @rpcmethod
    async def session_reset(self) -> dict[str, Any]:
        """Put the sizing settings back to the shipped defaults (``config_defaults/position_sizing.yaml``)."""
        from trader.config import PositionSizingConfig, defaults_dir, load_section

        shipped = await asyncio.to_thread(load_section, "position_sizing.yaml", PositionSizingConfig,
                                          path=defaults_dir() / "position_sizing.yaml")
        return await self._change_sizing(shipped, {"reset": True})

    # ------------------------------------------------------------------ proposals with their fills
    def _with_fills(self, row: dict[str, Any]) -> dict[str, Any]:
        """An executed proposal with what has filled so far on its entry order (from the fill ledger)."""
        ids = row.get("order_ids") or []
        if row.get("state") != "EXECUTED" or not ids or getattr(self, "ledger", None) is None:
            return row
        fills = [f for f in self.ledger.fills() if f.order_id == ids[0]]
        qty = math.fsum(f.quantity for f in fills)
        if qty > 0:
            row = {**row, "filled_quantity": qty,
                   "avg_fill_price": round(math.fsum(f.quantity * f.price for f in fills) / qty, 6)}
        return row

    @rpcmethod
    async def proposals(self, all_states: bool = False, states: list[str] | None = None,
                        limit: int = 200) -> list[dict[str, Any]]:
        """Pending proposals (every proposal with ``all_states``, or those in ``states``), newest first."""
        rows = await asyncio.to_thread(self.pipeline.list, all_states, states, limit)
        return [self._with_fills(r) for r in rows]

    @rpcmethod
    async def proposal(self, proposal_id: int) -> dict[str, Any]:
        """One proposal in full, with its sizing breakdown, risk preview and fills."""
        return self._with_fills(await asyncio.to_thread(self.pipeline.show, proposal_id))
