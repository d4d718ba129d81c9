"""Universes: named lists of symbols in ``state.duckdb`` (tables ``universes`` and ``universe_members``).

A member's conId is filled in once it has been resolved (data_service asks IB) and then serves as the cache.
Starter universes ship as package data (``trader/data/universes/*.csv``) and are created on first use.
CSV import checks every row before writing anything: a bad row raises `InvalidUniverse` naming its line and
nothing is imported.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from importlib import resources

from trader.data.store import DuckStore, from_db_ts, utc_now
from trader.errors import InvalidUniverse, UniverseNotFound

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9 .\-/]{0,15}$")
_SEC_TYPES = {"STK", "ETF", "FUT", "OPT", "CASH", "IND", "CFD", "CRYPTO"}


@dataclass(frozen=True, slots=True)
class UniverseMember:
    """One symbol of a universe; `conid` is None until resolved."""

    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    conid: int | None = None


def starter_universes() -> list[str]:
    """Names of the universes shipped with MMR."""
    files = resources.files("trader.data").joinpath("universes").iterdir()
    return sorted(f.name.removesuffix(".csv") for f in files if f.name.endswith(".csv"))


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidUniverse(f"bad universe name {name!r}: letters, digits, '_', '.', '-' only")
    return name


def _member(symbol: str, sec_type: str = "STK", exchange: str = "SMART", currency: str = "USD",
            conid: int | None = None) -> UniverseMember:
    symbol = symbol.strip().upper()
    sec_type = (sec_type or "STK").strip().upper()
    if not _SYMBOL.match(symbol):
        raise InvalidUniverse(f"bad symbol {symbol!r}")
    if sec_type not in _SEC_TYPES:
        raise InvalidUniverse(f"bad sec_type {sec_type!r} for {symbol}")
    return UniverseMember(symbol, sec_type, (exchange or "SMART").strip().upper(),
                          (currency or "USD").strip().upper(), conid)


def parse_csv(text: str) -> list[UniverseMember]:
    """Rows of a universe CSV (header with ``symbol`` and optional sec_type, exchange, currency, conid).

    Raises `InvalidUniverse` naming the first bad line; duplicates are refused too.
    """
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "symbol" not in fields:
        raise InvalidUniverse("universe CSV needs a header line with a 'symbol' column")
    members: list[UniverseMember] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            conid_text = row.get("conid", "")
            member = _member(row.get("symbol", ""), row.get("sec_type", ""), row.get("exchange", ""),
                             row.get("currency", ""), int(conid_text) if conid_text else None)
        except (InvalidUniverse, ValueError) as exc:
            raise InvalidUniverse(f"line {line}: {exc} (row: {row})") from None
        if member.symbol in seen:
            raise InvalidUniverse(f"line {line}: duplicate symbol {member.symbol}")
        seen.add(member.symbol)
        members.append(member)
    return members


class UniverseStore:
    """CRUD over the universe tables of a state store."""

    def __init__(self, store: DuckStore):
        self.store = store

    def names(self) -> list[dict]:
        """Every universe with its member count (starter universes are created on first listing)."""
        self.ensure_starters()
        rows = self.store.execute(
            "SELECT u.name, u.description, count(m.symbol), count(m.conid) FROM universes u "
            "LEFT JOIN universe_members m ON m.universe = u.name GROUP BY ALL ORDER BY u.name",
            write=False,
        )
        return [{"name": n, "description": d, "symbols": int(c), "resolved": int(r)} for n, d, c, r in rows]

    def ensure_starters(self) -> None:
        """Create the shipped universes that do not exist yet (a deleted one comes back only by `import`)."""
        existing = {r[0] for r in self.store.execute("SELECT name FROM universes", write=False)}
        for name in starter_universes():
            if name not in existing:
                text = resources.files("trader.data").joinpath("universes", f"{name}.csv").read_text()
                self.create(name, parse_csv(text), description="shipped with MMR")

    def exists(self, name: str) -> bool:
        """True if the universe exists."""
        return bool(self.store.execute("SELECT 1 FROM universes WHERE name = ?", [name], write=False))

    def create(self, name: str, members: list[UniverseMember] = (), *, description: str = "") -> None:  # type: ignore[assignment]
        """Create a universe (InvalidUniverse if it exists)."""
        _check_name(name)
        with self.store.transaction() as con:
            if con.execute("SELECT 1 FROM universes WHERE name = ?", [name]).fetchall():
                raise InvalidUniverse(f"universe {name!r} already exists")
            con.execute("INSERT INTO universes VALUES (?, ?, ?)", [name, description, utc_now()])
            self._add(con, name, members)

    def _add(self, con, name: str, members: list[UniverseMember]) -> int:  # noqa: ANN001 - duckdb connection
        now = utc_now()
        before = con.execute("SELECT count(*) FROM universe_members WHERE universe = ?", [name]).fetchall()[0][0]
        if members:
            con.executemany(
                "INSERT OR IGNORE INTO universe_members VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[name, m.symbol, m.sec_type, m.exchange, m.currency, m.conid, now] for m in members],
            )
        after = con.execute("SELECT count(*) FROM universe_members WHERE universe = ?", [name]).fetchall()[0][0]
        return int(after - before)

    def add(self, name: str, members: list[UniverseMember]) -> int:
        """Add symbols (already present ones are kept); returns how many are new."""
        with self.store.transaction() as con:
            self._require(con, name)
            return self._add(con, name, members)

    def add_symbols(self, name: str, symbols: list[str], sec_type: str = "STK") -> int:
        """Add plain symbols (validated) to a universe; returns how many are new."""
        members = [_member(s, sec_type) for s in symbols]
        return self.add(name, members)

    def import_csv(self, name: str, text: str, *, create: bool = True) -> int:
        """Import a CSV into a universe (created if missing); all rows or none."""
        members = parse_csv(text)
        with self.store.transaction():
            if not self.exists(name):
                if not create:
                    raise UniverseNotFound(f"no universe {name!r}")
                self.create(name)
            return self.add(name, members)

    def members(self, name: str) -> list[UniverseMember]:
        """Members of a universe, by symbol."""
        if not self.exists(name):
            self.ensure_starters()
        with self.store.connect(write=False) as con:
            self._require(con, name)
            rows = con.execute(
                "SELECT symbol, sec_type, exchange, currency, conid FROM universe_members "
                "WHERE universe = ? ORDER BY symbol", [name]).fetchall()
        return [UniverseMember(s, t, e, c, None if i is None else int(i)) for s, t, e, c, i in rows]

    def set_conid(self, name: str, symbol: str, conid: int) -> None:
        """Cache a resolved conId for a member."""
        self.store.execute("UPDATE universe_members SET conid = ? WHERE universe = ? AND symbol = ?",
                           [conid, name, symbol])

    def remove(self, name: str, symbols: list[str]) -> int:
        """Remove symbols; returns how many were there."""
        wanted = [s.strip().upper() for s in symbols]
        with self.store.transaction() as con:
            self._require(con, name)
            rows = con.execute(
                f"DELETE FROM universe_members WHERE universe = ? AND symbol IN ({', '.join('?' * len(wanted))}) "
                "RETURNING symbol", [name, *wanted]).fetchall()
        return len(rows)

    def delete(self, name: str) -> None:
        """Delete a universe and its members."""
        with self.store.transaction() as con:
            self._require(con, name)
            con.execute("DELETE FROM universe_members WHERE universe = ?", [name])
            con.execute("DELETE FROM universes WHERE name = ?", [name])

    @staticmethod
    def _require(con, name: str) -> None:  # noqa: ANN001 - duckdb connection
        if not con.execute("SELECT 1 FROM universes WHERE name = ?", [name]).fetchall():
            raise UniverseNotFound(f"no universe {name!r}; see 'mmr universe list'")

    def created_at(self, name: str):  # noqa: ANN201
        """When the universe was created (UTC)."""
        rows = self.store.execute("SELECT created_at FROM universes WHERE name = ?", [name], write=False)
        return from_db_ts(rows[0][0]) if rows else None
