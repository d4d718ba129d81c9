"""One contender process for tests/reliability/test_cas.py, started with ``runpy.run_path`` in a spawned
interpreter (a fresh process, like the CLI and the services that race in production).

``CONTENDER`` (set by the parent through ``init_globals``) holds the data dir, the schedule of rounds
``[(variant, proposal_id), ...]``, a ``multiprocessing.Barrier`` shared by every contender and a queue for
the outcomes. Each round, every contender waits at the barrier, then tries PENDING → APPROVED on the same
proposal with the store ``variant`` names:

- ``real``: `ProposalStore` as shipped;
- ``unguarded``: a store whose compare-and-set compares against the row as it is *now*, i.e. its UPDATE has
  no effective state/version guard (the bug a CAS exists to prevent);
- ``ignores_count``: a store that runs the guarded UPDATE but reports success whether or not a row matched
  (the "CAS result ignored" bug).
"""

from __future__ import annotations

import os

from trader.data.proposals import ProposalStore
from trader.data.store import state_store
from trader.errors import InvalidProposalTransition
from trader.trading.proposals import Proposal, ProposalState


class UnguardedStore(ProposalStore):
    """Compares against the row it is about to overwrite, so every write matches: no real guard."""

    def save_transition(self, old: Proposal, new: Proposal) -> bool:
        with self.store.transaction():  # the re-read and the write under one write lock
            return super().save_transition(self.get(old.id), new)


class IgnoresCountStore(ProposalStore):
    """Runs the guarded UPDATE but treats "no row matched" as success."""

    def save_transition(self, old: Proposal, new: Proposal) -> bool:
        super().save_transition(old, new)
        return True


VARIANTS = {"real": ProposalStore, "unguarded": UnguardedStore, "ignores_count": IgnoresCountStore}


def contend(data_dir: str, schedule: list[tuple[str, int]], barrier, outcomes) -> None:
    store = state_store(data_dir, lock_timeout=30)
    stores = {name: cls(store) for name, cls in VARIANTS.items()}
    stores["real"].get(schedule[0][1])  # schema check and imports done before the first round
    me = os.getpid()
    for variant, proposal_id in schedule:
        barrier.wait(timeout=60)
        try:
            stores[variant].transition(proposal_id, ProposalState.APPROVED, f"contender {me}")
            outcomes.put((variant, proposal_id, me, "won"))
        except InvalidProposalTransition as exc:
            outcomes.put((variant, proposal_id, me, f"lost: {exc}"))
        except BaseException as exc:  # reported to the parent, which fails the test with it
            outcomes.put((variant, proposal_id, me, f"error: {exc!r}"))
            barrier.abort()  # the others fail fast with BrokenBarrierError instead of waiting out the timeout
            raise


if __name__ == "__cas_contender__":
    contend(**CONTENDER)  # noqa: F821 - injected by the parent through runpy's init_globals
