"""Durable order records in ``state.duckdb``: order intents (exactly-once requests) and the fill ledger.

``IntentStore`` — one row per client request id. trader_service writes the row *before* it touches the broker
(`IntentStore.claim`, an insert that never overwrites), so a retry with the same id finds it and gets the
original answer instead of a second order; after a crash, rows left unfinished are settled by reconciliation
against the broker's orders (matched by ``orderRef``). States:

- ``received``  — recorded; the broker may or may not have been reached (reconciliation decides);
- ``done``      — finished with a result (``result``), possibly ``recovered`` after a restart;
- ``refused``   — finished with an error before anything was sent (``error``), or the broker refused it;
- ``expired``   — the caller's deadline passed before the order could be sent: nothing was sent.

``FillStore`` — executions keyed by the execution part of the execId (a correction replaces the row) and
commission reports keyed by execId; loaded into a `trader.trading.fills.FillLedger` at start.

Every method does blocking DuckDB work: call it from a worker thread, never on an event loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trader.data.store import DuckStore, from_db_ts, json_dumps, json_loads, utc_now
from trader.trading.fills import Commission, Fill, execution_key
from trader.trading.models import Action

__all__ = ["Intent", "IntentStore", "FillStore", "OPEN_STATES", "FINAL_STATES"]

OPEN_STATES = ("received",)
FINAL_STATES = ("done", "refused", "expired")

_INTENT_COLS = ("request_id, kind, state, source, order_ref, proposal_id, created_at, updated_at, deadline, "
                "request, result, error, order_ids")


@dataclass(frozen=True, slots=True)
class Intent:
    """One order action as recorded (see module doc for the states)."""

    request_id: str
    kind: str
    state: str = "received"
    source: str = ""
    order_ref: str = ""
    proposal_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    deadline: dt.datetime | None = None
    request: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: dict[str, Any] | None = None
    order_ids: tuple[int, ...] = ()

    @property
    def final(self) -> bool:
        """True once the intent has its answer."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view for `orders --request`."""
        return {"request_id": self.request_id, "kind": self.kind, "state": self.state, "source": self.source,
                "order_ref": self.order_ref, "proposal_id": self.proposal_id,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "deadline": self.deadline.isoformat() if self.deadline else None,
                "request": self.request, "result": self.result, "error": self.error,
                "order_ids": list(self.order_ids)}


def _intent(row: tuple) -> Intent:
    (rid, kind, state, source, ref, pid, created, updated, deadline, request, result, error, ids) = row
    return Intent(request_id=rid, kind=kind, state=state, source=source or "", order_ref=ref or "",
                  proposal_id=int(pid) if pid is not None else None, created_at=from_db_ts(created),
                  updated_at=from_db_ts(updated), deadline=from_db_ts(deadline) if deadline else None,
                  request=json_loads(request) or {}, result=json_loads(result), error=json_loads(error),
                  order_ids=tuple(int(i) for i in (json_loads(ids) or ())))


class IntentStore:
    """Order intents keyed by request id; safe to use from several processes (the store's file lock)."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store

    def claim(self, intent: Intent) -> tuple[Intent, bool]:
        """Record ``intent`` unless its request id is known: (the stored row, True when this call created it)."""
        now = utc_now()
        with self.store.transaction() as con:
            rows = con.execute(f"SELECT {_INTENT_COLS} FROM order_intents WHERE request_id = ?",
                               [intent.request_id]).fetchall()
            if rows:
                return _intent(rows[0]), False
            con.execute(
                f"INSERT INTO order_intents ({_INTENT_COLS}) VALUES ({', '.join('?' * 13)})",
                [intent.request_id, intent.kind, intent.state, intent.source, intent.order_ref, intent.proposal_id,
                 now, now, intent.deadline, json_dumps(intent.request), json_dumps(intent.result),
                 json_dumps(intent.error), json_dumps(list(intent.order_ids))])
        return Intent(**{**_fields(intent), "created_at": now, "updated_at": now}), True

    def finish(self, request_id: str, state: str, *, result: Any = None, error: dict[str, Any] | None = None,
               order_ids: Iterable[int] = (), only_open: bool = False) -> bool:
        """Set the final state (and result or error) of an intent; with ``only_open``, only if still open."""
        sql = "UPDATE order_intents SET state = ?, result = ?, error = ?, order_ids = ?, updated_at = ? " \
              "WHERE request_id = ?"
        if only_open:
            sql += f" AND state IN ({', '.join(repr(s) for s in OPEN_STATES)})"
        rows = self.store.execute(sql + " RETURNING request_id",
                                  [state, json_dumps(result), json_dumps(error),
                                   json_dumps([int(i) for i in order_ids]), utc_now(), request_id])
        return bool(rows)

    def get(self, request_id: str) -> Intent | None:
        """The intent with this request id, or None."""
        rows = self.store.execute(f"SELECT {_INTENT_COLS} FROM order_intents WHERE request_id = ?",
                                  [request_id], write=False)
        return _intent(rows[0]) if rows else None

    def open_intents(self) -> list[Intent]:
        """Intents without their answer yet (oldest first): what reconciliation must settle."""
        rows = self.store.execute(
            f"SELECT {_INTENT_COLS} FROM order_intents WHERE state IN "
            f"({', '.join(repr(s) for s in OPEN_STATES)}) ORDER BY created_at", write=False)
        return [_intent(r) for r in rows]

    def recent(self, limit: int = 50) -> list[Intent]:
        """The newest intents first."""
        rows = self.store.execute(f"SELECT {_INTENT_COLS} FROM order_intents ORDER BY created_at DESC LIMIT ?",
                                  [int(limit)], write=False)
        return [_intent(r) for r in rows]


def _fields(intent: Intent) -> dict[str, Any]:
    return {name: getattr(intent, name) for name in Intent.__slots__}


# --------------------------------------------------------------------------- fills
_FILL_COLS = ("exec_key, exec_id, order_id, perm_id, order_ref, symbol, con_id, side, shares, price, time, "
              "exchange, account, recovered, recorded_at")


@dataclass(frozen=True, slots=True)
class StoredFill:
    """A fill as stored, with the orderRef it carried and whether reconciliation found it."""

    fill: Fill
    order_ref: str = ""
    recovered: bool = False


class FillStore:
    """Executions (one row per execution; a correction replaces it) and commission reports."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store

    def put_fill(self, fill: Fill, order_ref: str = "", *, recovered: bool = False) -> None:
        """Insert or replace the row of this execution (the ledger decided it is new or a correction)."""
        with self.store.transaction() as con:
            key = execution_key(fill.exec_id)
            con.execute("DELETE FROM fills WHERE exec_key = ?", [key])
            con.execute(
                f"INSERT INTO fills ({_FILL_COLS}) VALUES ({', '.join('?' * 15)})",
                [key, fill.exec_id, fill.order_id, fill.perm_id, order_ref, fill.symbol, fill.con_id,
                 fill.action.value, fill.quantity, fill.price, fill.time, fill.exchange, fill.account,
                 recovered, utc_now()])

    def put_commission(self, report: Commission) -> None:
        """Insert or replace the commission report of one execId."""
        with self.store.transaction() as con:
            con.execute("DELETE FROM commissions WHERE exec_id = ?", [report.exec_id])
            con.execute("INSERT INTO commissions VALUES (?, ?, ?, ?, ?)",
                        [report.exec_id, report.commission, report.currency, report.realized_pnl, utc_now()])

    def fills(self) -> list[StoredFill]:
        """Every stored execution, oldest record first."""
        rows = self.store.execute(f"SELECT {_FILL_COLS} FROM fills ORDER BY recorded_at", write=False)
        out = []
        for (_key, exec_id, order_id, perm_id, ref, symbol, con_id, side, shares, price, time, exchange,
             account, recovered, _at) in rows:
            f = Fill(exec_id=exec_id, order_id=int(order_id or 0), symbol=symbol or "", action=Action(side),
                     quantity=float(shares), price=float(price), time=from_db_ts(time) if time else None,
                     perm_id=int(perm_id or 0), con_id=int(con_id or 0), exchange=exchange or "",
                     account=account or "")
            out.append(StoredFill(f, ref or "", bool(recovered)))
        return out

    def commissions(self) -> list[Commission]:
        """Every stored commission report."""
        rows = self.store.execute("SELECT exec_id, commission, currency, realized_pnl FROM commissions",
                                  write=False)
        return [Commission(e, float(c), cur or "USD", p) for e, c, cur, p in rows]
