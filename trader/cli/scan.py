"""``scan`` (the IB market scanner, reqScannerSubscription) and ``movers`` (top gainers/losers).

``scan --params`` lists the instrument types, location codes and scan codes IB offers. ``movers`` for stocks
uses Massive.com when a key is configured (else the IB scanner); indices and forex come from IB snapshots.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output

TRADER = "trader_service"
SCANS = ("gainers", "losers", "active", "hot-volume", "hot-price")


def _render_rows(out: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if "scan_codes" in out:
        for key in ("instruments", "locations", "scan_codes"):
            console.print(f"[bold]{key}[/]: {', '.join(out[key])}")
        return
    title = out.get("scan") or f"{out.get('market')} {'losers' if out.get('losers') else 'gainers'}"
    table = Table("#", "symbol", "last", "chg %", "volume", title=title)
    for r in out["rows"]:
        table.add_row(str(r.get("rank", "")), r["symbol"], "" if r.get("last") is None else f"{r['last']:.2f}",
                      "" if r.get("change_pct") is None else f"{r['change_pct']:+.2f}",
                      "" if r.get("volume") is None else f"{r['volume']:,.0f}")
    console.print(table)


@click.command()
@click.argument("kind", required=False, default="gainers", type=click.Choice(SCANS))
@click.option("--params", "params", is_flag=True, help="List the scanner's instruments, locations and scan codes.")
@click.option("--instrument", default="STK", show_default=True, help="STK, ETF.US, … (see --params).")
@click.option("--location", default="STK.US.MAJOR", show_default=True, help="STK.US.MAJOR, STK.NASDAQ, …")
@click.option("--num", default=20, show_default=True, type=click.IntRange(1, 50), help="Rows.")
@click.option("--above-price", type=float, default=None, help="Only prices above this.")
@click.option("--above-volume", type=float, default=None, help="Only session volume above this.")
@click.pass_obj
@output(_render_rows)
def scan(app: AppContext, kind: str, params: bool, instrument: str, location: str, num: int,
         above_price: float | None, above_volume: float | None) -> dict[str, Any]:
    """The IB market scanner: gainers, losers, active, hot-volume, hot-price."""
    if params:
        return app.call(TRADER, "scan_params", timeout=30.0)
    return app.call(TRADER, "scan", code=kind, instrument=instrument, location=location, num=num,
                    above_price=above_price, above_volume=above_volume, timeout=40.0)


@click.command()
@click.option("--market", type=click.Choice(["stocks", "indices", "forex"]), default="stocks", show_default=True)
@click.option("--losers", is_flag=True, help="The worst performers instead of the best.")
@click.option("--num", default=10, show_default=True, type=click.IntRange(1, 50), help="Rows.")
@click.option("--source", type=click.Choice(["auto", "ib", "massive"]), default="auto", show_default=True,
              help="Stocks only: auto = Massive.com when a key is configured, else the IB scanner.")
@click.pass_obj
@output(_render_rows)
def movers(app: AppContext, market: str, losers: bool, num: int, source: str) -> dict[str, Any]:
    """Today's top gainers (or --losers) for stocks, indices or forex."""
    return app.call(TRADER, "movers", market=market, losers=losers, num=num, source=source, timeout=40.0)
