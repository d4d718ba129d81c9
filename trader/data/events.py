"""The append-only event log (``event_store`` in state.duckdb): MMR's audit trail.

Every service appends what happened (proposal created, order sent, fill, risk rejection …) as an `Event`
with a kind, an optional correlation id tying related events together (e.g. a proposal id) and a JSON
payload. Rows are never updated or deleted. Ids come from a sequence stored in the file and are assigned
under the write lock, so id order is commit order across all processes; ``ts`` is taken under the lock
too, so it never goes backwards as ids go up (on one clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trader.data.store import DuckStore, from_db_ts, json_dumps, json_loads, to_utc, utc_now

_COLUMNS = "id, ts, kind, correlation_id, source, payload"


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the event log. ``ts`` is UTC-aware; ``payload`` is the decoded JSON object."""

    id: int
    ts: dt.datetime
    kind: str
    correlation_id: str | None
    source: str | None
    payload: dict


# Every kind the services write, known even before the first one is recorded (any kind recorded since is known
# too): an unknown ``--kind`` is an error naming these, never a silent empty list. tests/data/test_event_kinds.py
# checks the code writes no kind missing here.
DOCUMENTED_KINDS = frozenset({
    "broker_state", "broker_alarm", "broker_upstream_lost", "broker_upstream_restored", "reconciled",
    "reconcile_failed", "orders_reconciled", "order_submitted", "order_placed", "order_status", "order_adopted",
    "order_cancel_requested", "orders_cancel_all", "order_requested", "order_refused", "order_failed",
    "order_expired", "order_unknown", "fill", "commission", "intent_recovered", "proposal_created",
    "proposal_approve_requested", "proposal_rejected", "proposal_expired", "proposal_recovered", "trading_halted",
    "market_data_resubscribed", "risk_setting_changed", "sizing_changed",
    # strategy_service's live runtime (trader/strategy/live.py)
    "strategy_signal", "strategy_proposal", "strategy_order", "strategy_order_refused", "strategy_state",
    "strategy_forced_live", "strategy_resubscribe",
})


def check_event_kind(kind: str, recorded: list[str]) -> str:
    """``kind`` when it is documented or was ever recorded; else UnknownEventKind naming the known kinds."""
    from trader.errors import UnknownEventKind

    known = DOCUMENTED_KINDS | set(recorded)
    if kind not in known:
        raise UnknownEventKind(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(known))}")
    return kind


def parse_iso(text: str) -> dt.datetime:
    """An ISO-8601 time from the wire as an aware UTC datetime (a naive time is taken as UTC)."""
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"event kind must be a non-empty string, not {kind!r}")
    return kind


def _encode_payload(payload: Mapping[str, Any] | None) -> str:
    if payload is None:
        return "{}"
    if not isinstance(payload, Mapping):
        raise TypeError(f"event payload must be a mapping, not {type(payload).__name__}")
    return json_dumps(dict(payload))


def _row_to_event(row: tuple) -> Event:
    payload = json_loads(row[5])
    return Event(
        id=int(row[0]),
        ts=from_db_ts(row[1]),  # type: ignore[arg-type]
        kind=row[2],
        correlation_id=row[3],
        source=row[4],
        payload=payload if payload is not None else {},
    )


class EventStore:
    """Typed access to ``event_store``: append (one or many) and filtered reads ordered by id."""

    def __init__(self, store: DuckStore):
        self.store = store

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any] | None,
        *,
        correlation_id: str | None = None,
        source: str | None = None,
    ) -> int:
        """Append one event and return its id."""
        kind = _check_kind(kind)
        encoded = _encode_payload(payload)  # before locking: a bad payload never takes the lock
        with self.store.connect(write=True) as con:
            row = con.execute(
                "INSERT INTO event_store (ts, kind, correlation_id, source, payload) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                [utc_now(), kind, correlation_id, source, encoded],
            ).fetchone()
        return int(row[0])

    def append_many(
        self, events: Iterable[tuple[str, Mapping[str, Any] | None, str | None, str | None]]
    ) -> list[int]:
        """Append ``(kind, payload, correlation_id, source)`` tuples in one transaction; ids in input order."""
        rows = [
            (_check_kind(kind), _encode_payload(payload), correlation_id, source)
            for kind, payload, correlation_id, source in events
        ]
        if not rows:
            return []
        kinds, payloads, correlation_ids, sources = (list(col) for col in zip(*rows, strict=True))
        with self.store.transaction() as con:
            # Reserve the ids first (sorted: the sequence hands them out in scan order, which is not a
            # promise), then insert every row in one statement.
            ids = sorted(
                r[0] for r in con.execute(
                    "SELECT nextval('event_store_id_seq') FROM range(?)", [len(rows)]
                ).fetchall()
            )
            con.execute(
                "INSERT INTO event_store (id, ts, kind, correlation_id, source, payload) "
                "SELECT unnest($ids), $ts, unnest($kinds), unnest($correlation_ids), unnest($sources), "
                "unnest($payloads)::JSON",
                {
                    "ids": ids,
                    "ts": utc_now(),
                    "kinds": kinds,
                    "correlation_ids": correlation_ids,
                    "sources": sources,
                    "payloads": payloads,
                },
            )
        return ids

    @staticmethod
    def _where(
        *,
        since_id: int = 0,
        kind: str | None = None,
        correlation_id: str | None = None,
        since: dt.datetime | None = None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if since_id:
            clauses.append("id > ?")
            params.append(int(since_id))
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if correlation_id is not None:
            clauses.append("correlation_id = ?")
            params.append(correlation_id)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(to_utc(since))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def read(
        self,
        *,
        since_id: int = 0,
        kind: str | None = None,
        correlation_id: str | None = None,
        since: dt.datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Events with id > `since_id` matching every given filter (`since`: ts at or after), ordered by id
        (``newest_first``: by id descending, so ``limit`` keeps the newest)."""
        where, params = self._where(since_id=since_id, kind=kind, correlation_id=correlation_id, since=since)
        sql = f"SELECT {_COLUMNS} FROM event_store{where} ORDER BY id{' DESC' if newest_first else ''}"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit}")
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_row_to_event(row) for row in self.store.execute(sql, params, write=False)]

    def kinds(self) -> list[str]:
        """Every event kind recorded so far, sorted."""
        return [r[0] for r in self.store.execute("SELECT DISTINCT kind FROM event_store ORDER BY kind", write=False)]

    def count(self, *, kind: str | None = None, since: dt.datetime | None = None) -> int:
        """How many events match `kind` and `since` (ts at or after)."""
        where, params = self._where(kind=kind, since=since)
        return int(self.store.execute(f"SELECT count(*) FROM event_store{where}", params, write=False)[0][0])

    def last_id(self) -> int:
        """The highest event id so far (0 if the log is empty): a starting point for ``read(since_id=…)``."""
        return int(self.store.execute("SELECT coalesce(max(id), 0) FROM event_store", write=False)[0][0])
