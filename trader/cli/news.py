"""``news``: headlines for tickers or every held position (IB news, or Massive.com with sentiment).

Bodies only with ``--detail``, trimmed to ``--body-chars`` characters each, so an agent's context stays small.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.cli.ideas import split_symbols

TRADER = "trader_service"


def _render(out: dict[str, Any], console: Any) -> None:
    if out.get("note"):
        console.print(out["note"])
    if out.get("skipped"):
        console.print(f"[dim]no news lookup for {', '.join(out['skipped'])}[/]")
    for i in out["items"]:
        sentiment = f" [{i['sentiment']}]" if i.get("sentiment") else ""
        console.print(f"[dim]{i['time']}[/] [bold]{i['symbol']}[/] {i['headline']}{sentiment} [dim]({i['provider']})[/]")
        if i.get("body"):
            console.print(f"    {i['body']}")


@click.command()
@click.argument("tickers", nargs=-1)
@click.option("--held", is_flag=True, help="News for every held stock (an option: its underlying).")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 100), help="Headlines in all.")
@click.option("--since", default=None, help="Only news from this date (YYYY-MM-DD) or ISO time on.")
@click.option("--detail", is_flag=True, help="Include article bodies (trimmed).")
@click.option("--body-chars", default=600, show_default=True, type=click.IntRange(50, 5000),
              help="Trim each body to this many characters.")
@click.option("--source", type=click.Choice(["auto", "ib", "massive"]), default="auto", show_default=True,
              help="auto = Massive.com when a key is configured, else IB.")
@click.pass_obj
@output(_render)
def news(app: AppContext, tickers: tuple[str, ...], held: bool, limit: int, since: str | None, detail: bool,
         body_chars: int, source: str) -> dict[str, Any]:
    """Recent headlines for TICKERS (or --held); --detail adds trimmed bodies."""
    import datetime as dt

    symbols = split_symbols(tickers)
    if not symbols and not held:
        raise click.UsageError("give TICKERS or --held")
    if since:
        try:
            dt.datetime.fromisoformat(since)
        except ValueError:
            raise click.BadParameter("use YYYY-MM-DD or an ISO time", param_hint="--since") from None
    return app.call(TRADER, "news", symbols=symbols, limit=limit, since=since, detail=detail, held=held,
                    source=source, body_chars=body_chars, timeout=60.0)
