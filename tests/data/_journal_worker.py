"""Child process for the proposal-journal crash tests: ``python _journal_worker.py DATA_DIR FIRST LAST [--flush]``.

Stores batches FIRST..LAST of 5 proposals each (request ids ``b<batch>-<i>``) with `ProposalStore.insert_many`,
printing ``stored <batch> <ids>`` once each batch's call has returned (= durable); with ``--flush`` it also copies
the journal into DuckDB after every batch, so a kill lands anywhere in the store's write paths.
"""
from __future__ import annotations

import sys
from datetime import UTC, datetime

from trader.data.proposals import ProposalStore
from trader.data.store import state_store
from trader.trading.models import Action
from trader.trading.proposals import Proposal


def main() -> None:
    """Store the batches (see the module docstring)."""
    data_dir, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = ProposalStore(state_store(data_dir))
    now = datetime.now(UTC)
    for b in range(first, last + 1):
        batch = [Proposal(id=0, symbol="AAPL", action=Action.BUY, created_at=now, quantity=1.0, updated_at=now,
                          request_id=f"b{b}-{i}") for i in range(5)]
        ids = [p.id for p in store.insert_many(batch)]
        sys.stdout.write(f"stored {b} {' '.join(map(str, ids))}\n")
        sys.stdout.flush()
        if "--flush" in sys.argv:
            store.flush()


if __name__ == "__main__":
    main()
