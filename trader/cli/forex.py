"""``forex``: quotes of currency pairs, conversion at the mid, the majors at once and their movers.

Pairs are written ``EURUSD``, ``EUR.USD`` or ``EUR USD`` (``trader/tools/forex.py``); quotes come from
trader_service's ``fx_quotes`` (IDEALPRO), conversion from ``fx_convert`` (the listed pair, its inverse, or two
legs through USD).
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output

FX_TIMEOUT = 20.0


def _timeout(app: AppContext) -> float:
    return max(app.config.rpc_timeout, FX_TIMEOUT)


def _fmt(x: Any, digits: int = 5) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _render_quotes(r: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    rows = r.get("quotes") or ([r] if "pair" in r else [])
    table = Table()
    for c in ("pair", "bid", "ask", "mid", "spread_pips", "change_pct"):
        table.add_column(c, justify="right")
    for q in rows:
        table.add_row(q["pair"], _fmt(q.get("bid")), _fmt(q.get("ask")), _fmt(q.get("mid")),
                      _fmt(q.get("spread_pips"), 1), _fmt(q.get("change_pct"), 3))
    console.print(table)
    for pair, why in (r.get("missing") or {}).items():
        console.print(f"[yellow]{pair}[/]: {why}")


def _render_convert(r: dict[str, Any], console: Any) -> None:
    console.print(f"{r['amount']:,.2f} {r['from']} = {r['converted']:,.2f} {r['to']}  (rate {r['rate']:.6g})")


def _majors() -> list[str]:
    from trader.tools.forex import MAJORS

    return [b + q for b, q in MAJORS]


@click.group()
def forex() -> None:
    """Forex: quotes, conversion, the majors."""


@forex.command("quote")
@click.argument("pair")
@click.argument("quote_ccy", required=False)
@click.pass_obj
@output(_render_quotes)
def quote(app: AppContext, pair: str, quote_ccy: str | None) -> dict[str, Any]:
    """A quote of PAIR: EURUSD, EUR.USD or EUR USD (bid, ask, mid, spread in pips, change %)."""
    from trader.cli.portfolio import TRADER
    from trader.errors import ContractNotFound
    from trader.tools.forex import parse_pair

    try:
        base, q = parse_pair(pair, quote_ccy)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    r = app.call(TRADER, "fx_quotes", [base + q], timeout=_timeout(app))
    if not r["quotes"]:
        raise ContractNotFound("; ".join(r["missing"].values()) or f"no quote for {base}{q}")
    return r["quotes"][0]


@forex.command("convert")
@click.argument("src")
@click.argument("dst")
@click.argument("amount", type=click.FloatRange(min=0, min_open=True))
@click.pass_obj
@output(_render_convert)
def convert(app: AppContext, src: str, dst: str, amount: float) -> dict[str, Any]:
    """AMOUNT of SRC in DST at the mid.

    Through the listed pair, its inverse, or two legs via USD."""
    from trader.cli.portfolio import TRADER

    return app.call(TRADER, "fx_convert", src.upper(), dst.upper(), amount, timeout=_timeout(app))


@forex.command("snapshot-all")
@click.pass_obj
@output(_render_quotes)
def snapshot_all(app: AppContext) -> dict[str, Any]:
    """The seven majors."""
    from trader.cli.portfolio import TRADER

    return app.call(TRADER, "fx_quotes", _majors(), timeout=_timeout(app))


@forex.command("movers")
@click.option("--losers", is_flag=True, help="Largest falls first (default: largest rises).")
@click.pass_obj
@output(_render_quotes)
def movers(app: AppContext, losers: bool) -> dict[str, Any]:
    """Majors by change since the close."""
    from trader.cli.portfolio import TRADER

    r = app.call(TRADER, "fx_quotes", _majors(), timeout=_timeout(app))
    known = [q for q in r["quotes"] if q.get("change_pct") is not None]
    known.sort(key=lambda q: q["change_pct"], reverse=not losers)
    return {"quotes": known, "missing": r["missing"], "losers": losers}
