"""``ideas``: scan a universe (or tickers) with a preset and rank the ideas (trader_service does the work).

Presets and their scoring: trader/tools/presets.py (``mmr --json ideas --presets`` lists them). The symbols come
from ``--tickers`` or a universe stored by data_service (``--universe``, default ``demo``). The answer says how
many symbols were scanned and passed the filters: an empty ``ideas`` list is a result, while a source that
cannot answer is an error (``SourceUnavailable`` / ``BrokerNotReady``).
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output

TRADER = "trader_service"
DATA = "data_service"
IDEAS_TIMEOUT = 90.0


def split_symbols(values: tuple[str, ...]) -> list[str]:
    """``("AAPL,MSFT", "NVDA")`` → ``["AAPL", "MSFT", "NVDA"]`` (upper-case, order kept, no duplicates)."""
    out: list[str] = []
    for v in values:
        for s in v.replace(" ", ",").split(","):
            s = s.strip().upper()
            if s and s not in out:
                out.append(s)
    return out


def universe_symbols(app: AppContext, name: str) -> list[str]:
    """The stock symbols of a stored universe (data_service)."""
    members = app.call(DATA, "universe_show", name)
    return [m["symbol"] for m in members if (m.get("sec_type") or "STK") == "STK"]


def _render(out: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if "presets" in out:
        table = Table("preset", "filters", "score", "label", title="Idea presets")
        for p in out["presets"]:
            table.add_row(p["name"], ", ".join(f"{k}={v:g}" for k, v in p["filters"].items()), p["score"], p["label"])
        console.print(table)
        return
    title = (f"{out['preset']} ({out['source']}): {out['passed']} of {out['scanned']} passed "
             f"{', '.join(f'{k}={v:g}' for k, v in out['filters'].items())}")
    table = Table("symbol", "score", "label", "price", "chg %", "rvol", "rsi", "points", title=title)
    for i in out["ideas"]:
        table.add_row(i["symbol"], f"{i['score']:.1f}", i["label"], f"{i['price']:.2f}",
                      "" if i["change_pct"] is None else f"{i['change_pct']:+.2f}",
                      "" if i["rvol"] is None else f"{i['rvol']:.2f}", "" if i["rsi"] is None else f"{i['rsi']:.0f}",
                      " ".join(f"{k}:{v:g}" for k, v in i["points"].items()))
    console.print(table)
    if out.get("missing"):
        console.print(f"[yellow]no data for {out['missing']['count']} symbols[/]: {out['missing']['first']}")


@click.command()
@click.argument("preset", required=False, default="momentum")
@click.option("--presets", "list_presets", is_flag=True, help="List the presets with their filters and scores.")
@click.option("--tickers", multiple=True, help="Symbols to scan (comma-separated or repeated).")
@click.option("--universe", "universe_name", default=None, help="A stored universe to scan (default: demo).")
@click.option("--num", default=10, show_default=True, type=click.IntRange(1, 200), help="Ideas to return.")
@click.option("--min-price", type=float, default=None, help="Override the preset's minimum price.")
@click.option("--max-price", type=float, default=None, help="Maximum price.")
@click.option("--min-volume", type=float, default=None, help="Override the preset's minimum volume (shares).")
@click.option("--min-change", type=float, default=None, help="Minimum change vs the previous close, percent.")
@click.option("--max-change", type=float, default=None, help="Maximum change vs the previous close, percent.")
@click.option("--detail", is_flag=True, help="Every metric behind each idea.")
@click.option("--news", "with_news", is_flag=True, help="Attach the newest headline to each idea.")
@click.option("--source", type=click.Choice(["auto", "ib", "massive"]), default="auto", show_default=True,
              help="auto = Massive.com when a key is configured, else IB.")
@click.pass_obj
@output(_render)
def ideas(app: AppContext, preset: str, list_presets: bool, tickers: tuple[str, ...], universe_name: str | None,
          num: int, min_price: float | None, max_price: float | None, min_volume: float | None,
          min_change: float | None, max_change: float | None, detail: bool, with_news: bool,
          source: str) -> dict[str, Any]:
    """Ranked trade ideas from a preset (momentum, gap-up, gap-down, mean-reversion, breakout, volatile)."""
    from trader.tools.presets import PRESETS
    from trader.tools.presets import preset as find_preset

    if list_presets:
        return {"presets": [p.describe() for p in PRESETS.values()]}
    try:
        find_preset(preset)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PRESET") from None
    if tickers and universe_name:
        raise click.UsageError("give --tickers or --universe, not both")
    symbols = split_symbols(tickers) or universe_symbols(app, universe_name or "demo")
    filters = {"min_price": min_price, "max_price": max_price, "min_volume": min_volume,
               "min_change": min_change, "max_change": max_change}
    out = app.call(TRADER, "ideas", preset=preset, symbols=symbols, num=num,
                   filters={k: v for k, v in filters.items() if v is not None}, detail=detail, source=source,
                   timeout=IDEAS_TIMEOUT)
    if with_news and out["ideas"]:
        _attach_news(app, out, source)
    return out


def _attach_news(app: AppContext, out: dict[str, Any], source: str) -> None:
    """The newest headline per idea; a news failure is noted, it does not hide the ideas."""
    from trader.errors import MMRError

    symbols = [i["symbol"] for i in out["ideas"]]
    try:
        got = app.call(TRADER, "news", symbols=symbols, limit=3 * len(symbols), source=source, timeout=60.0)
    except MMRError as exc:
        out["news_error"] = {"type": type(exc).__name__, "message": str(exc)[:200]}
        return
    newest: dict[str, dict[str, Any]] = {}
    for item in got["items"]:
        newest.setdefault(item["symbol"], item)
    for i in out["ideas"]:
        n = newest.get(i["symbol"])
        if n:
            i["news"] = {"time": n["time"], "headline": n["headline"]}
            if n.get("sentiment"):
                i["news"]["sentiment"] = n["sentiment"]
