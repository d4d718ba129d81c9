"""Service logging: ib_async's per-update state snapshots are dropped, its order events kept."""

from __future__ import annotations

import logging

from trader.logging_setup import quiet_broker_state_logs


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_broker_state_snapshots_are_dropped_and_order_events_kept():
    logger = logging.getLogger("ib_async.wrapper")
    collect, level = _Collect(), logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        quiet_broker_state_logs()
        quiet_broker_state_logs()  # installed once, however often services configure logging
        assert sum(type(f).__name__ == "_DropStateUpdates" for f in logger.filters) == 1
        # The lines ib_async's Wrapper writes (f-strings, INFO): a position's re-mark and an order's progress.
        logger.info("updatePortfolio: PortfolioItem(contract=Stock(conId=265598, symbol='AAPL'), position=20.0)")
        logger.info("position: Position(account='DU1', contract=Stock(conId=265598), position=20.0)")
        logger.info("openOrder: Trade(contract=Stock(symbol='AAPL'), order=MarketOrder(orderId=7))")
        logger.info("execDetails Execution(execId='0001', orderId=7)")
        logger.warning("position: a warning about a position is never dropped")
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert [m.split(":")[0].split(" ")[0] for m in collect.messages] == ["openOrder", "execDetails", "position"]
