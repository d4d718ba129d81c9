"""One chokepoint per danger: orders reach the broker only through Executioner.submit.

A structural test over the source tree: ib_async's placeOrder is called only by the placement adapter, the
adapter's place/place_bracket only by IBBroker.place, and IBBroker.place only by the executioner — so no RPC
method, CLI command, proposal approval or strategy can send an order around the risk gate."""

from __future__ import annotations

import re
from pathlib import Path

TRADER = Path(__file__).resolve().parents[2] / "trader"


def _callers(pattern: str) -> set[str]:
    rx = re.compile(pattern)
    hits = set()
    for path in TRADER.rglob("*.py"):
        rel = path.relative_to(TRADER.parent).as_posix()
        if rel.startswith("trader/sim/"):  # the simulated exchange itself, not a client
            continue
        for line in path.read_text().splitlines():
            if rx.search(line) and not line.lstrip().startswith(("def ", "async def ", "#")):
                hits.add(rel)
    return hits


def test_only_the_placement_adapter_calls_place_order():
    assert _callers(r"\.placeOrder\(") == {"trader/broker/placement.py"}


def test_only_the_broker_port_uses_the_placer():
    assert _callers(r"\.placer\.place(_bracket)?\(") == {"trader/broker/adapter.py"}


def test_only_the_executioner_calls_the_broker_port():
    assert _callers(r"\bbroker\.place\(") == {"trader/trading/executioner.py"}
