"""trader_service: the only process that talks to the broker (order execution, portfolio, risk gate,
proposal pipeline). For now: RPC health plus the tick publisher; the trading runtime lands with issue 5."""

from __future__ import annotations

import sys
from typing import Any

from trader.messaging.pubsub import Publisher
from trader.objects import BrokerState
from trader.service import Service, run_service


class TraderService(Service):
    """Broker connection, orders, portfolio, risk gate, proposals."""

    name = "trader_service"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.publisher: Publisher | None = None
        self.broker_state = BrokerState.NOT_CONNECTED

    def rpc_port(self) -> int:
        return self.config.trader_rpc_port

    async def on_start(self) -> None:
        self.publisher = Publisher(self.config.endpoint(self.config.trader_pub_port))

    async def on_stop(self) -> None:
        if self.publisher is not None:
            self.publisher.close()

    def endpoints(self) -> dict[str, str]:
        eps = super().endpoints()
        if self.publisher is not None:
            eps["pub"] = self.publisher.address
        return eps

    def details(self) -> dict[str, Any]:
        return {
            "broker": {
                "kind": self.config.broker,
                "state": self.broker_state.value,
                "address": f"{self.config.ib_server_address}:{self.config.ib_server_port}",
                "client_id": self.config.ib_client_id,
            }
        }


def main(argv: list[str] | None = None) -> int:
    return run_service(TraderService, argv)


if __name__ == "__main__":
    sys.exit(main())
