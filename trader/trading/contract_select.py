"""Picking one contract out of many: local symbols, the futures front month, and bounded ambiguity reports.

Pure functions over contract dicts (the shape ``trader.broker.convert.contract_to_dict`` produces), so the
resolver stays a thin IB call and these rules can be tested without a broker.

- **Local symbols**: ``ESZ6`` (future: root + month code + year digit) and the OCC option symbol
  ``AAPL  261218C00250000`` name one contract each; :func:`parse_local_symbol` turns them into the query
  fields (underlying symbol, sec type, local symbol).
- **Front month** (:func:`front_month`): with no expiry, local symbol or conId, a futures query means the
  contract with the earliest last trade date more than ``FUT_ROLL_DAYS`` calendar days after today — inside
  that window the next contract is the front (the roll). ``futures roll SYM`` shows both.
- **Ambiguity** (:func:`ambiguity_report`): at most ``MAX_CANDIDATES`` compact candidates, each with the exact
  CLI flags that pick it, plus how many matched and which flags would narrow the query.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

__all__ = ["contract_multiplier", "FUT_ROLL_DAYS", "MAX_CANDIDATES", "parse_local_symbol", "front_month", "futures_by_expiry",
           "ambiguity_report", "candidate_flags", "FUTURES_SEC_TYPES"]

FUT_ROLL_DAYS = 5  # a future this close to its last trade date has rolled: the next one is the front month
MAX_CANDIDATES = 5  # candidates an ambiguous answer lists (with the flags that pick each)
FUTURES_SEC_TYPES = frozenset({"FUT", "CONTFUT"})

_FUT_LOCAL = re.compile(r"^([A-Z0-9]{1,5}?)([FGHJKMNQUVXZ])(\d{1,2})$")
_FOP_LOCAL = re.compile(r"^([A-Z0-9]{1,5}?)([FGHJKMNQUVXZ])(\d{1,2}) ([CP])(\d+(?:\.\d+)?)$")
_OCC_LOCAL = re.compile(r"^([A-Z][A-Z0-9.]{0,5})\s*(\d{6})([CP])(\d{8})$")

# contract dict field -> (CLI flag, how to print its value)
_FLAG_FIELDS: tuple[tuple[str, str], ...] = (
    ("last_trade_date", "--expiry"),
    ("strike", "--strike"),
    ("right", "--right"),
    ("multiplier", "--multiplier"),
    ("trading_class", "--trading-class"),
    ("exchange", "--exchange"),
    ("currency", "--currency"),
)
_COMPACT = ("symbol", "sec_type", "con_id", "local_symbol", "last_trade_date", "strike", "right", "multiplier",
            "trading_class", "exchange", "currency")


def parse_local_symbol(text: str, sec_type: str = "") -> dict[str, str] | None:
    """Query fields for a local symbol, or None when ``text`` is not one.

    An OCC option symbol (``AAPL  261218C00250000``, spaces optional) is recognised for any ``sec_type`` (it
    cannot be mistaken for a stock), a futures option (``ESZ6 C5000``) for FUT/FOP; a futures symbol (``ESZ6``) only when ``sec_type`` is FUT or FOP, since
    short stock tickers look the same. Returns ``{"symbol", "sec_type", "local_symbol"}``.
    """
    raw = " ".join(str(text).upper().split())
    occ = _OCC_LOCAL.match(raw)
    if occ and sec_type.upper() in ("", "STK", "OPT"):
        root = occ.group(1)
        local = f"{root:<6}{occ.group(2)}{occ.group(3)}{occ.group(4)}"
        return {"symbol": root, "sec_type": "OPT", "local_symbol": local}
    fop = _FOP_LOCAL.match(raw)
    if fop and sec_type.upper() in ("FOP", "FUT", ""):
        return {"symbol": fop.group(1), "sec_type": "FOP", "local_symbol": raw}
    fut = _FUT_LOCAL.match(raw)
    if fut and sec_type.upper() in ("FUT", "FOP"):
        return {"symbol": fut.group(1), "sec_type": sec_type.upper(), "local_symbol": raw}
    return None


def contract_multiplier(contract: dict[str, Any]) -> float:
    """The contract's multiplier as a number (1.0 for stocks and whenever IB gives none)."""
    try:
        value = float(contract.get("multiplier") or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return value if value > 0 else 1.0


def _ltd(c: dict[str, Any]) -> date | None:
    text = str(c.get("last_trade_date") or "")[:8]
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def futures_by_expiry(candidates: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """Futures not yet past their last trade date, earliest first."""
    live = [c for c in candidates if c.get("sec_type") in FUTURES_SEC_TYPES and (_ltd(c) or today) >= today]
    return sorted(live, key=lambda c: (_ltd(c) or today, int(c.get("con_id") or 0)))


def front_month(candidates: list[dict[str, Any]], today: date,
                roll_days: int = FUT_ROLL_DAYS) -> dict[str, Any] | None:
    """The front-month future among ``candidates`` (see module doc), or None when they are not one series.

    One series: every candidate is a future of the same symbol, trading class, multiplier, exchange and
    currency, differing only by expiry. The front is the earliest whose last trade date is more than
    ``roll_days`` days away; when every one is inside the window, the last one.
    """
    if not candidates or any(c.get("sec_type") not in FUTURES_SEC_TYPES for c in candidates):
        return None
    series = {(c.get("symbol"), c.get("trading_class"), str(c.get("multiplier")), c.get("exchange"),
               c.get("currency")) for c in candidates}
    if len(series) != 1:
        return None
    ordered = futures_by_expiry(candidates, today)
    if not ordered:
        return None
    for c in ordered:
        d = _ltd(c)
        if d is None or (d - today).days > roll_days:
            return c
    return ordered[-1]


def _flag_value(field: str, value: Any) -> str:
    if field == "strike":
        return f"{float(value):g}"
    text = str(value)
    return f'"{text}"' if " " in text else text


def candidate_flags(c: dict[str, Any], varying: list[str]) -> str:
    """The CLI flags that pick ``c`` among candidates differing in ``varying`` fields (plus ``--conid``)."""
    parts = []
    for field, flag in _FLAG_FIELDS:
        if field in varying and c.get(field) not in (None, "", 0, 0.0):
            parts.append(f"{flag} {_flag_value(field, c[field])}")
    parts.append(f"(or --conid {c.get('con_id')})")
    return " ".join(parts)


def ambiguity_report(candidates: list[dict[str, Any]], key: str,
                     limit: int = MAX_CANDIDATES) -> tuple[str, list[dict[str, Any]]]:
    """(message, at most ``limit`` compact candidates with ``flags``) for an ambiguous query ``key``.

    The message names how many contracts matched, which flags narrow the query and, for options and futures,
    the expiries on offer (at most 8), so the next query can be exact.
    """
    ordered = sorted(candidates, key=lambda c: (str(c.get("last_trade_date") or ""), float(c.get("strike") or 0.0),
                                                str(c.get("right") or ""), int(c.get("con_id") or 0)))
    varying = [f for f, _ in _FLAG_FIELDS if len({str(c.get(f)) for c in ordered}) > 1]
    if "multiplier" in varying and {str(c.get("multiplier")) for c in ordered} <= {"", "None", "0", "1"}:
        varying.remove("multiplier")
    if len(ordered) > limit and ("strike" in varying or "right" in varying):
        # Show a useful slice of a chain: the nearest expiry's strikes around the middle of its ladder.
        first = [c for c in ordered if c.get("last_trade_date") == ordered[0].get("last_trade_date")]
        mid = max(0, len(first) // 2 - limit // 2)
        shown = first[mid:mid + limit]
    else:
        shown = ordered[:limit]
    listed = [{**{k: c.get(k) for k in _COMPACT if c.get(k) not in (None, "", 0, 0.0) or k == "con_id"},
               "flags": candidate_flags(c, varying)} for c in shown]
    flags = ", ".join(flag for field, flag in _FLAG_FIELDS if field in varying) or "--conid"
    expiries = sorted({str(c.get("last_trade_date")) for c in ordered if c.get("last_trade_date")})
    exp_note = ""
    if expiries:
        exp_note = f"; expiries {', '.join(expiries[:8])}" + (f" (+{len(expiries) - 8} more)" if len(expiries) > 8
                                                            else "")
    message = (f"{len(ordered)} contracts match {key}; narrow it with {flags} (or --conid){exp_note}; "
               f"{len(listed)} of them listed with the flags that pick each")
    return message, listed
