"""The intent schema: the single contract between the parser, the eval harness and the order builder (pure).

An intent is a JSON object::

    {"action": "BUY"|"SELL", "quantity": int > 0, "symbol": root, "sec_type": "STK"|"OPT"|"FUT"|"FOP",
     "structure": "single"|"vertical",
     "legs": [{"right": "C"|"P", "strike": number, "action": "BUY"|"SELL"}],   # ascending strike; [] outright
     "expiry": "YYYY-MM-DD" (options) | "YYYY-MM" (futures month) | null,
     "order_type": "MKT"|"LMT"|"STP", "limit_price": number|null, "tif": "DAY"|"GTC"}

or a refusal ``{"refuse": true, "reason": "…"}``. For ``STP`` the stop trigger price is in ``limit_price``.
"""

from __future__ import annotations

import re
from typing import Any

FIELDS = ("action", "quantity", "symbol", "sec_type", "structure", "legs", "expiry", "order_type", "limit_price",
          "tif")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")

# The same contract as JSON Schema (draft 2020-12; the subset strict tool use accepts): the LLM parser's tool input.
# It states the shape; ``schema_errors`` below also checks what JSON Schema cannot say here (quantity > 0,
# ascending strikes, legs per structure, expiry formats per sec_type).
_NUMBER_OR_NULL = {"anyOf": [{"type": "number"}, {"type": "null"}]}
INTENT_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["BUY", "SELL"]},
        "quantity": {"type": "integer", "description": "whole shares or contracts, > 0"},
        "symbol": {"type": "string", "description": "root or ticker, upper case"},
        "sec_type": {"type": "string", "enum": ["STK", "OPT", "FUT", "FOP"]},
        "structure": {"type": "string", "enum": ["single", "vertical"]},
        "legs": {"type": "array", "description": "ascending strike; [] for outrights and stock", "items": {
            "type": "object",
            "properties": {"right": {"type": "string", "enum": ["C", "P"]}, "strike": {"type": "number"},
                           "action": {"type": "string", "enum": ["BUY", "SELL"]}},
            "required": ["right", "strike", "action"], "additionalProperties": False}},
        "expiry": {"anyOf": [{"type": "string", "description": "YYYY-MM-DD (options) or YYYY-MM (futures)"},
                             {"type": "null"}]},
        "order_type": {"type": "string", "enum": ["MKT", "LMT", "STP"]},
        "limit_price": {**_NUMBER_OR_NULL, "description": "the limit (LMT) or stop (STP) price; null for MKT"},
        "tif": {"type": "string", "enum": ["DAY", "GTC"]},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}
REFUSAL_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"refuse": {"type": "boolean", "const": True}, "reason": {"type": "string"}},
    "required": ["refuse", "reason"], "additionalProperties": False,
}


class NLRefusal(Exception):
    """The text is not one well-formed order: the parser refuses with this reason."""


def refusal(reason: str) -> dict[str, Any]:
    return {"refuse": True, "reason": reason}


def is_refusal(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("refuse") is True


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and x > 0


def schema_errors(doc: Any) -> list[str]:
    """Everything wrong with ``doc`` as an intent or a refusal ([] when it is valid)."""
    if not isinstance(doc, dict):
        return ["not an object"]
    if "refuse" in doc:
        errs = [] if doc.get("refuse") is True and isinstance(doc.get("reason"), str) and doc["reason"] else \
            ["a refusal is {refuse: true, reason: non-empty string}"]
        return errs + ([f"unexpected keys {sorted(set(doc) - {'refuse', 'reason'})}"]
                       if set(doc) - {"refuse", "reason"} else [])
    errs = []
    if set(doc) != set(FIELDS):
        errs.append(f"keys must be exactly {list(FIELDS)}")
        return errs
    if doc["action"] not in ("BUY", "SELL"):
        errs.append("action must be BUY or SELL")
    q = doc["quantity"]
    if not (isinstance(q, int) and not isinstance(q, bool) and q > 0):
        errs.append("quantity must be an integer > 0")
    if not (isinstance(doc["symbol"], str) and doc["symbol"]):
        errs.append("symbol must be a non-empty string")
    st = doc["sec_type"]
    if st not in ("STK", "OPT", "FUT", "FOP"):
        errs.append("sec_type must be STK, OPT, FUT or FOP")
    if doc["structure"] not in ("single", "vertical"):
        errs.append("structure must be single or vertical")
    legs = doc["legs"]
    if not isinstance(legs, list):
        errs.append("legs must be a list")
        legs = []
    for leg in legs:
        if not (isinstance(leg, dict) and set(leg) == {"right", "strike", "action"} and leg["right"] in ("C", "P")
                and _num(leg["strike"]) and leg["action"] in ("BUY", "SELL")):
            errs.append(f"bad leg {leg!r}")
    strikes = [leg.get("strike") for leg in legs if isinstance(leg, dict)]
    if strikes != sorted(strikes, key=lambda s: s if _num(s) else 0):
        errs.append("legs must be in ascending strike")
    option = st in ("OPT", "FOP")
    if option:
        want = 1 if doc["structure"] == "single" else 2
        if len(legs) != want:
            errs.append(f"a {doc['structure']} option has {want} leg(s)")
        if not (isinstance(doc["expiry"], str) and _DAY.match(doc["expiry"])):
            errs.append("an option's expiry is YYYY-MM-DD")
    else:
        if legs or doc["structure"] != "single":
            errs.append("an outright has structure single and no legs")
        if st == "FUT" and doc["expiry"] is not None and not (isinstance(doc["expiry"], str)
                                                             and _MONTH.match(doc["expiry"])):
            errs.append("a future's expiry is YYYY-MM or null (front month)")
        if st == "STK" and doc["expiry"] is not None:
            errs.append("a stock has no expiry")
    if doc["order_type"] not in ("MKT", "LMT", "STP"):
        errs.append("order_type must be MKT, LMT or STP")
    lp = doc["limit_price"]
    if doc["order_type"] == "MKT" and lp is not None:
        errs.append("a market order has no limit_price")
    if doc["order_type"] in ("LMT", "STP") and not _num(lp):
        errs.append("a LMT/STP order needs limit_price > 0")
    if doc["tif"] not in ("DAY", "GTC"):
        errs.append("tif must be DAY or GTC")
    return errs


def validate(doc: Any) -> dict[str, Any]:
    """``doc`` if it is a valid intent or refusal, else a refusal naming the schema errors."""
    errs = schema_errors(doc)
    return doc if not errs else refusal("parser output failed schema validation: " + "; ".join(errs))
