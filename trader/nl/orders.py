"""Intent → trader_service calls (pure): the ``resolve`` selections of its contracts, and the ``propose`` /
``propose_preview`` arguments of the one order it is. Nothing here talks to a service.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from trader.nl.symbols import FUTURES_EXCHANGES


class NotProposable(Exception):
    """The intent is valid but the proposal path cannot carry it (yet): the message says why."""


def exchange_for(intent: dict[str, Any]) -> str:
    """Where the intent's contracts trade: the futures root's exchange for FUT/FOP, SMART for stocks/options."""
    if intent["sec_type"] in ("FUT", "FOP"):
        return FUTURES_EXCHANGES.get(intent["symbol"], "CME")
    return "SMART"


def selections(intent: dict[str, Any]) -> list[dict[str, Any]]:
    """trader_service ``resolve`` arguments: the outright (a future without expiry = the front month), or one
    per option leg."""
    base = {"symbol": intent["symbol"], "sec_type": intent["sec_type"], "exchange": exchange_for(intent),
            "currency": "USD"}
    if intent["sec_type"] == "FUT":
        return [base | ({"expiry": intent["expiry"].replace("-", "")} if intent["expiry"] else {})]
    if intent["sec_type"] == "STK":
        return [base]
    return [base | {"expiry": intent["expiry"].replace("-", ""), "strike": leg["strike"], "right": leg["right"]}
            for leg in intent["legs"]]


def request_id_for(text: str, ref_date: str) -> str:
    """The same command text on the same day is the same proposal (a retry never makes a second one)."""
    return "nl-" + hashlib.sha256(f"{ref_date}|{text.strip().lower()}".encode()).hexdigest()[:24]


def order_symbol(contract: dict[str, Any]) -> str:
    """The symbol a proposal carries for ``contract``: its local symbol for futures and options (one contract,
    re-resolvable by the service), else its symbol (as ``trader.cli.contracts.order_symbol``)."""
    if contract.get("sec_type") in ("FUT", "OPT", "FOP") and contract.get("local_symbol"):
        return str(contract["local_symbol"])
    return str(contract.get("symbol") or "")


def proposal_call(intent: dict[str, Any], contracts: list[dict[str, Any]], text: str) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of trader_service's ``propose`` (and ``propose_preview``) for the intent: an outright or
    a single option, or a vertical as ONE combo (BAG) order — the same arguments as the combo API's
    ``trader.cli.combos.combo_order(..., propose=True)``. Raises :class:`NotProposable` for what propose cannot
    carry: a spread without a net limit price (or with a stop). A stop (STP) is a stop order at ``limit_price``."""
    reasoning = f"nl: {text.strip()[:300]} -> {json.dumps(intent, separators=(',', ':'))}"
    if intent["structure"] == "vertical":
        return _vertical_call(intent, contracts, reasoning)
    c = contracts[0]
    kwargs = {"quantity": float(intent["quantity"]),
              "limit_price": intent["limit_price"] if intent["order_type"] == "LMT" else None,
              "stop_price": intent["limit_price"] if intent["order_type"] == "STP" else None,
              "sec_type": str(c["sec_type"]), "exchange": str(c.get("exchange") or exchange_for(intent)),
              "currency": str(c.get("currency") or "USD"), "tif": intent["tif"],
              # a SELL of a future or option opens a short by design; a stock SELL stays within the holding
              "allow_short": intent["action"] == "SELL" and intent["sec_type"] != "STK",
              "reasoning": reasoning}
    return (order_symbol(c), intent["action"]), kwargs


def _vertical_call(intent: dict[str, Any], contracts: list[dict[str, Any]], reasoning: str) -> tuple[tuple, dict]:
    """A vertical as one combo: the legs written for buying it (``trader.trading.combos.vertical``: the debit
    spread), so the intent's BUY is the debit vertical and SELL the credit one, at the net limit price."""
    from trader.trading.combos import effective_legs, vertical
    from trader.trading.models import Action

    if intent["order_type"] != "LMT":
        raise NotProposable("a spread is one combo order with a net limit price: say 'for N' (or 'N credit' / "
                            "'N debit'); a market spread is not proposed")
    try:
        legs = vertical(contracts[0], contracts[1])
    except (ValueError, KeyError, IndexError) as exc:
        raise NotProposable(f"the spread's contracts do not make a vertical: {exc}") from None
    traded = {(leg.strike, leg.right): leg.action.value for leg in effective_legs(legs, Action(intent["action"]))}
    if traded != {(float(leg["strike"]), leg["right"]): leg["action"] for leg in intent["legs"]}:
        raise NotProposable(f"the combo would trade {traded}, not the intent's legs {intent['legs']}")
    kwargs = {"quantity": float(intent["quantity"]), "limit_price": intent["limit_price"], "reasoning": reasoning,
              "sec_type": "BAG", "currency": str(contracts[0].get("currency") or "USD"), "tif": intent["tif"],
              "legs": [leg.to_dict() for leg in legs]}
    return (intent["symbol"].upper(), intent["action"]), kwargs
