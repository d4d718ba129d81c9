"""strategy_service: the MessageBus, and the live strategy runtime.

A thin shell: it hosts the MessageBus (targeted messages to subscribed processes; strategies' signals on the
``signal`` topic) and mounts the live runtime (`trader.strategy.live.LiveRunner`), which runs the entries of
strategy_runtime.yaml on live bars built from trader_service's ticks and sends their signals through
trader_service's proposals, risk gate and exactly-once approval.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from trader.messaging.bus import MessageBusServer
from trader.messaging.rpc import rpcmethod
from trader.service import Service, latency_summary, run_service


class StrategyService(Service):
    """Live strategy runtime and the message bus."""

    name = "strategy_service"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bus: MessageBusServer | None = None
        self.live: Any = None

    def rpc_port(self) -> int:
        return self.config.strategy_rpc_port

    async def on_start(self) -> None:
        from trader.strategy.live import LiveRunner

        self.bus = MessageBusServer(self.config.endpoint(self.config.strategy_bus_port), security=self.security)
        await self.bus.start()
        self.live = LiveRunner(self, bus=self.bus)
        await self.live.start()

    async def on_stop(self) -> None:
        if self.live is not None:
            await self.live.stop()
        if self.bus is not None:
            await self.bus.stop()

    def endpoints(self) -> dict[str, str]:
        eps = super().endpoints()
        if self.bus is not None:
            eps["bus"] = self.bus.address
        return eps

    def details(self) -> dict[str, Any]:
        subs = self.bus.subscriptions() if self.bus is not None else {}
        out: dict[str, Any] = {"bus_topics": len(subs), "strategies_directory": self.config.strategies_directory}
        if self.live is not None:
            states: dict[str, int] = {}
            for live in list(self.live.runtime.strategies.values()):
                states[live.state.value] = states.get(live.state.value, 0) + 1
            out.update(strategies=states, kill_switch=self.live.guard.kill_switch,
                       live_account=self.live.guard.live_account)
            # The last 1000 bar closes: bars in -> their signals published / their proposals stored.
            for key, values in (("dispatch_ms", self.live.dispatch_ms), ("propose_ms", self.live.propose_ms)):
                if summary := latency_summary(values):
                    out[key] = summary
        return out

    # --- RPC: the live runtime ---------------------------------------------------------------------
    @rpcmethod
    async def strategies(self) -> list[dict[str, Any]]:
        """Every deployed strategy: state, last bar, last signal, targets, error (traceback), and its position
        per conId and today's P&L from its fills (``pnl_error`` when trader_service cannot be read)."""
        rows = self.live.rows()
        try:
            pnl = await asyncio.wait_for(self.live.pnl(), 2.0)
        except Exception as exc:  # noqa: BLE001 - the listing still answers without trader_service
            for r in rows:
                r["pnl_error"] = f"{type(exc).__name__}: {exc}"
            return rows
        for r in rows:
            p = pnl.get(r["name"]) or {}
            r.update(positions=p.get("positions", {}), today_pnl=round(p.get("today_pnl", 0.0), 2),
                     pnl=round(p.get("pnl", 0.0), 2))
        return rows

    @rpcmethod
    async def strategy_pnl(self, name: str | None = None) -> dict[str, Any]:
        """Position, P&L (since deployed) and today's P&L per strategy, per conId, from its attributed fills."""
        self._known(name)
        return await self.live.pnl(name)

    @rpcmethod
    async def strategy_fills(self, name: str, limit: int = 100) -> list[dict[str, Any]]:
        """A strategy's fills (orders it caused, by proposal order ref), newest first."""
        from trader.strategy.attribution import fills_rows

        self._known(name)
        return fills_rows((await self.live.attributed_fills(name)).get(name, []))[: max(0, int(limit))]

    def _known(self, name: str | None) -> None:
        if name is not None and name not in self.live.runtime.strategies:
            self.live.runtime._get(name)  # raises StrategyLoadError naming `mmr strategies`

    @rpcmethod
    async def strategy_signals(self, name: str, limit: int = 50) -> dict[str, Any]:
        """A strategy's recent signals and what became of them (proposals, orders, refusals), newest first."""
        await self.live.written()  # a close's events wait for its proposals (`LiveRunner._held`): not for a read
        signals = await asyncio.to_thread(self.live.signals, name, limit)
        decisions = await asyncio.to_thread(self.live.decisions, name, limit)
        return {"strategy": name, "signals": signals, "decisions": decisions}

    @rpcmethod
    async def strategy_reload(self, name: str | None = None) -> dict[str, Any]:
        """Re-read strategy_runtime.yaml now (one strategy or all): changed files are re-imported."""
        loaded = await self.live.reconcile(only=name)
        return {"reloaded": loaded, "strategies": self.live.rows()}

    @rpcmethod
    async def strategy_resubscribe(self) -> dict[str, Any]:
        """Ask trader_service for every strategy's ticks again (after it restarted)."""
        await self.live.resubscribe()
        return {"subscribed": sorted(self.live.symbols)}

    @rpcmethod
    def strategy_bars(self, name: str, con_id: int) -> Any:
        """Every bar a strategy has seen on one conId (history and live), as a DataFrame: the parity check's
        input for the backtester."""
        from trader.errors import StrategyLoadError

        live = self.live.runtime.strategies.get(name)
        if live is None or int(con_id) not in live.slots:
            raise StrategyLoadError(f"no strategy {name!r} on conId {con_id}")
        return live.slots[int(con_id)].frame()


def main(argv: list[str] | None = None) -> int:
    return run_service(StrategyService, argv)


if __name__ == "__main__":
    sys.exit(main())
