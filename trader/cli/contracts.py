"""Contract selection flags shared by every command that names an instrument.

``--expiry YYYYMMDD|YYYYMM``, ``--strike``, ``--right C|P``, ``--multiplier``, ``--trading-class`` and ``--conid``
narrow a symbol to one contract; a local symbol (``ESZ6`` with ``--sectype FUT``, ``"AAPL  261218C00250000"``)
names one by itself. Futures without an expiry mean the front month (rule in
``trader/trading/contract_select.py``). The service resolves; an ambiguous query is an ``AmbiguousContract``
error listing at most 5 candidates, each with the flags that pick it.
"""

from __future__ import annotations

from typing import Any

import click

SELECTION_FIELDS = ("expiry", "strike", "right", "multiplier", "trading_class", "con_id")


def selection_options(fn):
    """Add the selection flags (see module doc) to a click command."""
    opts = [
        click.option("--conid", "con_id", type=click.IntRange(min=1), default=None,
                     help="IB conId: names exactly one contract (other contract flags are ignored)."),
        click.option("--trading-class", default=None, help="Trading class (e.g. SPXW vs SPX)."),
        click.option("--multiplier", default=None, help="Contract multiplier (e.g. 50 for ES, 5 for MES)."),
        click.option("--right", type=click.Choice(["C", "P", "CALL", "PUT"], case_sensitive=False), default=None,
                     help="Option right: C (call) or P (put)."),
        click.option("--strike", type=click.FloatRange(min=0, min_open=True), default=None, help="Option strike."),
        click.option("--expiry", default=None, metavar="YYYYMMDD|YYYYMM",
                     help="Expiry date or contract month (futures default to the front month)."),
    ]
    for opt in opts:
        fn = opt(fn)
    return fn


def selection_kwargs(selection: dict[str, Any]) -> dict[str, Any]:
    """The given selection flags as trader_service's ``resolve`` keyword arguments (unset ones dropped)."""
    out = {k: selection.get(k) for k in SELECTION_FIELDS if selection.get(k) not in (None, "")}
    if "right" in out:
        out["right"] = str(out["right"]).upper()[0]
    return out


def needs_resolution(symbol: str, sec_type: str, selection: dict[str, Any]) -> bool:
    """True when the order's instrument must be resolved to one conId first: a derivative, a selection flag,
    or a local symbol (anything but a plain stock ticker)."""
    return bool(selection_kwargs(selection)) or sec_type.upper() not in ("STK", "") or " " in symbol.strip()


def order_symbol(contract: dict[str, Any]) -> str:
    """The symbol an order or proposal carries for ``contract``: its local symbol for futures and options (one
    contract, re-resolvable by the service), else its symbol."""
    if contract.get("sec_type") in ("FUT", "OPT", "FOP") and contract.get("local_symbol"):
        return str(contract["local_symbol"])
    return str(contract.get("symbol") or "")


def resolve_selected(app: Any, symbol: str, sec_type: str, exchange: str, currency: str,
                     selection: dict[str, Any]) -> dict[str, Any]:
    """trader_service's one contract for a symbol and its selection flags (raises AmbiguousContract …)."""
    from trader.cli.portfolio import TRADER

    return app.call(TRADER, "resolve", symbol.upper(), timeout=max(app.config.rpc_timeout, 10.0),
                    sec_type=sec_type.upper(), exchange=exchange.upper(), currency=currency.upper(),
                    **selection_kwargs(selection))

