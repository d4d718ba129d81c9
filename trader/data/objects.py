"""A small key → JSON value store (``object_store`` in state.duckdb) for settings and counters.

Values are anything `trader.data.store.json_dumps` accepts, so they come back as plain JSON types
(a tuple comes back as a list, a datetime as an ISO string). `compare_and_set` is atomic across processes:
the read and the write happen in one transaction under the file's write lock.
"""

from __future__ import annotations

import json
from typing import Any

from trader.data.store import DuckStore, json_dumps, json_loads, utc_now

_UPSERT = (
    "INSERT INTO object_store (key, kind, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, value = excluded.value, "
    "updated_at = excluded.updated_at"
)


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"object store key must be a non-empty string, not {key!r}")
    return key


class ObjectStore:
    """Typed access to ``object_store``: put/get/delete/keys and an atomic compare-and-set."""

    def __init__(self, store: DuckStore):
        self.store = store

    def put(self, key: str, value: Any, *, kind: str = "") -> None:
        """Store `value` under `key`, replacing any previous value."""
        encoded = json_dumps(value)
        self.store.execute(_UPSERT, [_check_key(key), kind, encoded, utc_now()])

    def put_many(self, values: dict[str, Any], *, kind: str = "") -> None:
        """Store every key → value of ``values`` in one transaction (one lock, one open)."""
        now = utc_now()
        self.store.executemany(_UPSERT, [[_check_key(k), kind, json_dumps(v), now] for k, v in values.items()])

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default` if there is none."""
        rows = self.store.execute("SELECT value FROM object_store WHERE key = ?", [_check_key(key)], write=False)
        return json_loads(rows[0][0]) if rows else default

    def delete(self, key: str) -> bool:
        """Remove `key`; True if it existed."""
        rows = self.store.execute("DELETE FROM object_store WHERE key = ? RETURNING key", [_check_key(key)])
        return bool(rows)

    def keys(self, prefix: str = "") -> list[str]:
        """Every key starting with `prefix` (all keys if empty), sorted."""
        rows = self.store.execute(
            "SELECT key FROM object_store WHERE starts_with(key, ?) ORDER BY key", [prefix], write=False
        )
        return [row[0] for row in rows]

    def compare_and_set(self, key: str, expected: Any, new: Any, *, kind: str | None = None) -> bool:
        """Set `key` to `new` only if its current value equals `expected`; True if it did.

        ``expected=None`` matches a missing key (and a stored JSON null). `expected` goes through a JSON
        round trip and is compared as canonical JSON: ``(1, 2)`` matches a stored ``[1, 2]``, but ``True``
        does not match ``1`` and ``1`` does not match ``1.0``. `kind` defaults to the stored one.
        """
        key = _check_key(key)
        expected_canonical = _canonical(json_loads(json_dumps(expected)))
        encoded = json_dumps(new)
        with self.store.transaction() as con:
            row = con.execute("SELECT kind, value FROM object_store WHERE key = ?", [key]).fetchone()
            current = json_loads(row[1]) if row is not None else None
            if _canonical(current) != expected_canonical:
                return False
            stored_kind = kind if kind is not None else ((row[0] or "") if row is not None else "")
            con.execute(_UPSERT, [key, stored_kind, encoded, utc_now()])
        return True


def _canonical(value: Any) -> str:
    # Strict JSON equality: unlike ==, True does not match 1 and key order does not matter.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
