"""Persistent proposals and position groups over `DuckStore` (``state.duckdb``).

Every state change of a proposal goes through :meth:`ProposalStore.transition`: one compare-and-set
``UPDATE proposal_store … WHERE id = ? AND state = ? AND version = ?`` inside ``store.transaction()``. The
store's exclusive file lock serialises writers across processes, and the WHERE clause makes a stale writer
match no row, so of several concurrent approvals exactly one wins; the others re-read the row and get
:class:`InvalidProposalTransition` ("already APPROVED") from the pure state machine.

The full proposal is kept as JSON in ``detail`` (the source of truth when reading back); the other columns
are there for SQL filters and humans poking at the file.

New proposals are stored in a durable journal first (`trader.data.proposal_journal`: one fsync'd SQLite commit,
not a DuckDB open and checkpoint) and copied into ``proposal_store`` by `ProposalStore.flush`; every read and
compare-and-set here flushes first, so nothing journaled is ever invisible to a reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from trader.data.proposal_journal import ProposalJournal
from trader.data.store import DuckStore, json_dumps, json_loads, utc_now
from trader.errors import GroupNotFound, InvalidGroup, InvalidProposalTransition, ProposalNotFound
from trader.trading.groups import PositionGroup
from trader.trading.proposals import (
    Proposal,
    ProposalState,
    expire_if_due,
    proposal_from_dict,
    proposal_to_dict,
    transition,
    transition_guard,
)

__all__ = ["ProposalStore", "GroupStore"]

_COLUMNS = (
    "id, created_at, updated_at, state, symbol, action, quantity, amount, order_type, limit_price, "
    "confidence, group_name, reasoning, expires_at, order_ids, detail, version, request_id"
)


def _row(p: Proposal) -> tuple[Any, ...]:
    return (
        p.id, p.created_at, p.updated_at, p.state.value, p.symbol, p.action.value, p.quantity, p.amount_usd,
        p.order_type.value, p.limit_price, p.confidence, p.group, p.reasoning, p.expires_at,
        json_dumps(list(p.order_ids)), json_dumps(proposal_to_dict(p)), p.version, p.request_id or None,
    )


def _arrow_rows(rows: list[tuple[Any, ...]]) -> Any:
    """`_row` tuples as a pyarrow Table with the columns' types (None stays NULL)."""
    import pyarrow as pa

    ts, text, num = pa.timestamp("us", tz="UTC"), pa.string(), pa.float64()
    types = (pa.int64(), ts, ts, text, text, text, num, num, text, num, num, text, text, ts, text, text, pa.int32(),
             text)
    names = [c.strip() for c in _COLUMNS.split(",")]
    return pa.table({n: pa.array([r[i] for r in rows], type=t) for i, (n, t) in enumerate(zip(names, types,
                                                                                              strict=True))})


class ProposalStore:
    """Proposals in ``proposal_store``; safe to use from several processes at once."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store
        self.journal = ProposalJournal(store)

    def insert(self, p: Proposal) -> Proposal:
        """Store a new proposal. ``p.id <= 0`` means "allocate the next id"; returns the stored proposal — or,
        when ``p.request_id`` is already stored, that earlier proposal (checked under the journal's write lock)."""
        return self.insert_many([p])[0]

    def insert_many(self, proposals: list[Proposal]) -> list[Proposal]:
        """`insert` for several proposals in one fsync'd journal commit (a strategy's signals of one bar close):
        stored = durable in the journal, copied into ``proposal_store`` by `flush` (see `proposal_journal`).
        Idempotent per request id (an already stored or repeated request id answers with the first proposal);
        the stored proposals in input order."""
        if not proposals:
            return []
        out = self.journal.append(proposals)
        return [self.get(p) if isinstance(p, int) else p for p in out]

    def flush(self) -> int:
        """Copy journaled proposals into ``proposal_store`` now (readers do it themselves first; trader_service
        also does it in the background after storing, and on start: the journal's replay)."""
        return self.journal.flush()

    def by_request_id(self, request_id: str) -> Proposal | None:
        """The proposal created under ``request_id``, or None (answered by the journal's index: no DuckDB access
        when there is none)."""
        return self.by_request_ids([request_id]).get(request_id)

    def by_request_ids(self, request_ids: Iterable[str]) -> dict[str, Proposal]:
        """`by_request_id` for several (one journal connection, e.g. a batch's refused orders): request id → the
        proposal created under it, for those that have one."""
        wanted = list(dict.fromkeys(request_ids))
        if not wanted:
            return {}
        known = self.journal.request_ids(wanted)
        if known is not False:
            return {rid: self.get(pid) for rid, pid in known.items()}
        out: dict[str, Proposal] = {}
        for k in range(0, len(wanted), 500):  # no journal yet: proposal_store answers, one query (one open) a chunk
            chunk = wanted[k:k + 500]
            rows = self.store.execute(f"SELECT request_id, detail FROM proposal_store WHERE request_id IN "
                                      f"({', '.join('?' * len(chunk))}) ORDER BY id DESC", chunk, write=False)
            for rid, detail in rows:  # the first proposal stored under a request id answers (the lowest id)
                out[rid] = proposal_from_dict(json_loads(detail))
        return out

    def get(self, proposal_id: int) -> Proposal:
        """The proposal with this id (journaled ones too); raises :class:`ProposalNotFound`."""
        self.journal.flush()
        rows = self.store.execute("SELECT detail FROM proposal_store WHERE id = ?", [int(proposal_id)],
                                  write=False)
        if not rows:
            raise ProposalNotFound(f"no proposal with id {proposal_id}")
        return proposal_from_dict(json_loads(rows[0][0]))

    def list(self, states: Iterable[ProposalState] | None = None, limit: int = 200) -> list[Proposal]:
        """Proposals newest first (journaled ones too), optionally only those in ``states``."""
        self.journal.flush()
        sql = "SELECT detail FROM proposal_store"
        params: list[Any] = []
        wanted = [ProposalState(s).value for s in states] if states is not None else None
        if wanted is not None:
            if not wanted:
                return []
            sql += f" WHERE state IN ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        return [proposal_from_dict(json_loads(r[0])) for r in self.store.execute(sql, params, write=False)]

    def save_transition(self, old: Proposal, new: Proposal) -> bool:
        """Compare-and-set ``old → new``; False when the row is no longer in ``old``'s state/version."""
        g = transition_guard(old)
        self.journal.flush()  # `old` came from `get`, which flushed: normally nothing to do
        with self.store.transaction() as con:
            rows = con.execute(
                "UPDATE proposal_store SET state = ?, updated_at = ?, order_ids = ?, detail = ?, version = ? "
                "WHERE id = ? AND state = ? AND version = ? RETURNING id",
                [new.state.value, new.updated_at, json_dumps(list(new.order_ids)),
                 json_dumps(proposal_to_dict(new)), new.version, g.id, g.state, g.version],
            ).fetchall()
        return len(rows) == 1

    def transition(self, proposal_id: int, new_state: ProposalState, reason: str, *,
                   order_ids: Iterable[int] | None = None, now: datetime | None = None,
                   changes: dict[str, Any] | None = None) -> Proposal:
        """Move a proposal to ``new_state`` exactly once across all processes.

        Reads, applies the pure :func:`transition` and persists with the compare-and-set; if another writer
        got there first, re-reads and tries again, so the loser sees the clear "already …" error.
        """
        ids = tuple(order_ids or ())
        for _attempt in range(20):
            old = self.get(proposal_id)
            new = transition(old, new_state, reason, now or utc_now(), order_ids=ids, changes=changes)
            if self.save_transition(old, new):
                return new
        raise InvalidProposalTransition(  # pragma: no cover - needs 20 lost races in a row
            f"proposal {proposal_id}: too much contention moving to {ProposalState(new_state).value}",
            proposal_id=proposal_id, to_state=ProposalState(new_state).value)

    def expire_due(self, now: datetime | None = None) -> list[Proposal]:
        """Mark every PENDING proposal past its deadline EXPIRED; returns the ones this call expired."""
        now = now or utc_now()
        expired: list[Proposal] = []
        self.journal.flush()
        # Only the overdue ones are read (expires_at is set once, at creation): the sweep runs on a timer in
        # trader_service, and parsing every PENDING proposal (thousands, under a strategy that is not
        # auto-executed) took a worker thread ~0.1 s of the GIL, now and then during a bar close's checks.
        rows = self.store.execute(
            "SELECT detail FROM proposal_store WHERE state = ? AND expires_at IS NOT NULL AND expires_at <= ? "
            "ORDER BY id", [ProposalState.PENDING.value, now], write=False)
        for p in (proposal_from_dict(json_loads(r[0])) for r in rows):
            new = expire_if_due(p, now)
            if new is not None and self.save_transition(p, new):
                expired.append(new)
        return expired


class GroupStore:
    """Position groups in ``position_groups`` (name, budget % of NLV, symbols)."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store

    def list(self) -> list[PositionGroup]:
        """Every group, by name."""
        rows = self.store.execute("SELECT name, budget_pct, symbols FROM position_groups ORDER BY name",
                                  write=False)
        return [PositionGroup(n, float(b), tuple(json_loads(s) or ())) for n, b, s in rows]

    def get(self, name: str) -> PositionGroup:
        """The group called ``name``; raises :class:`GroupNotFound`."""
        rows = self.store.execute("SELECT name, budget_pct, symbols FROM position_groups WHERE name = ?",
                                  [name], write=False)
        if not rows:
            raise GroupNotFound(f"no position group named {name!r}")
        n, b, s = rows[0]
        return PositionGroup(n, float(b), tuple(json_loads(s) or ()))

    def create(self, name: str, budget_pct: float, symbols: Iterable[str] = ()) -> PositionGroup:
        """Create a group; raises :class:`InvalidGroup` if the name is taken."""
        group = PositionGroup(name, float(budget_pct), tuple(symbols))
        now = utc_now()
        with self.store.transaction() as con:
            if con.execute("SELECT 1 FROM position_groups WHERE name = ?", [name]).fetchall():
                raise InvalidGroup(f"position group {name!r} already exists")
            con.execute("INSERT INTO position_groups VALUES (?, ?, ?, ?, ?)",
                        [group.name, group.budget_pct, json_dumps(list(group.symbols)), now, now])
        return group

    def _update(self, group: PositionGroup) -> PositionGroup:
        rows = self.store.execute(
            "UPDATE position_groups SET budget_pct = ?, symbols = ?, updated_at = ? WHERE name = ? RETURNING name",
            [group.budget_pct, json_dumps(list(group.symbols)), utc_now(), group.name])
        if not rows:
            raise GroupNotFound(f"no position group named {group.name!r}")
        return group

    def add(self, name: str, symbols: Iterable[str]) -> PositionGroup:
        """Add symbols to a group (duplicates ignored)."""
        with self.store.transaction():
            return self._update(self.get(name).with_symbols(symbols))

    def remove(self, name: str, symbols: Iterable[str]) -> PositionGroup:
        """Remove symbols from a group (absent ones ignored)."""
        with self.store.transaction():
            return self._update(self.get(name).without_symbols(symbols))

    def set_budget(self, name: str, budget_pct: float) -> PositionGroup:
        """Change a group's budget (% of NLV)."""
        with self.store.transaction():
            return self._update(self.get(name).with_budget(float(budget_pct)))

    def delete(self, name: str) -> bool:
        """Delete a group; raises :class:`GroupNotFound` if there is none."""
        rows = self.store.execute("DELETE FROM position_groups WHERE name = ? RETURNING name", [name])
        if not rows:
            raise GroupNotFound(f"no position group named {name!r}")
        return True
