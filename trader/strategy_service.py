"""strategy_service: hosts the MessageBus that routes targeted messages to subscribed processes only.

The live strategy runtime (running the entries of strategy_runtime.yaml on live bars and sending their signals
through trader_service's risk gate) is not built yet; `mmr strategies deploy` already writes those entries."""

from __future__ import annotations

import sys
from typing import Any

from trader.messaging.bus import MessageBusServer
from trader.service import Service, run_service


class StrategyService(Service):
    """Live strategy runtime and the message bus."""

    name = "strategy_service"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bus: MessageBusServer | None = None

    def rpc_port(self) -> int:
        return self.config.strategy_rpc_port

    async def on_start(self) -> None:
        self.bus = MessageBusServer(self.config.endpoint(self.config.strategy_bus_port), security=self.security)
        await self.bus.start()

    async def on_stop(self) -> None:
        if self.bus is not None:
            await self.bus.stop()

    def endpoints(self) -> dict[str, str]:
        eps = super().endpoints()
        if self.bus is not None:
            eps["bus"] = self.bus.address
        return eps

    def details(self) -> dict[str, Any]:
        subs = self.bus.subscriptions() if self.bus is not None else {}
        return {"bus_topics": len(subs), "strategies_directory": self.config.strategies_directory}


def main(argv: list[str] | None = None) -> int:
    return run_service(StrategyService, argv)


if __name__ == "__main__":
    sys.exit(main())
