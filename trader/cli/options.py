"""``options``: expirations, a bounded chain with greeks, and option orders through the same gate.

``options expirations SYM`` lists the expirations the broker lists; ``options chain SYM -e DATE`` one expiry's
strikes nearest the money (at most 20, each call and put) with bid/ask/last/volume and, with ``--greeks``, the
broker's implied volatility, delta, gamma, vega and theta. ``options buy|sell`` resolve one contract and place it
like ``buy``/``sell`` (trader_service's exactly-once path and risk gate); ``--propose`` proposes it instead.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output

CHAIN_TIMEOUT = 30.0


def _timeout(app: AppContext) -> float:
    return max(app.config.rpc_timeout, CHAIN_TIMEOUT)


def _underlying_options(fn):
    fn = click.option("--currency", default="USD", show_default=True, help="Currency.")(fn)
    fn = click.option("--exchange", default="SMART", show_default=True, help="Underlying's exchange.")(fn)
    fn = click.option("--sectype", "sec_type", default="STK", show_default=True,
                      help="Underlying's type: STK, IND or FUT (futures options).")(fn)
    return fn


def _render_expirations(r: dict[str, Any], console: Any) -> None:
    console.print(f"{r['symbol']}: {r['total']} expirations")
    console.print(" ".join(r["expirations"]))


def _fmt(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _render_chain(r: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{r['symbol']} {r['expiry']} (underlying {_fmt(r['underlying_price'])}, "
                        f"{r['strikes_shown']} of {r['strikes_listed']} strikes)")
    cols = ["strike", "right", "bid", "ask", "last", "volume", "impliedVol", "delta", "gamma", "vega", "theta"]
    for c in cols:
        table.add_column(c, justify="right")
    for row in r["rows"]:
        table.add_row(*(str(row.get(c)) if c == "right" else _fmt(row.get(c), 4 if c in cols[6:] else 2)
                        for c in cols))
    console.print(table)


@click.group()
def options() -> None:
    """Options: expirations, chains with greeks, orders."""


@options.command("expirations")
@click.argument("symbol")
@_underlying_options
@click.pass_obj
@output(_render_expirations)
def expirations(app: AppContext, symbol: str, sec_type: str, exchange: str, currency: str) -> dict[str, Any]:
    """Option expirations of SYMBOL."""
    from trader.cli.portfolio import TRADER

    return app.call(TRADER, "option_expirations", symbol.upper(), sec_type=sec_type.upper(),
                    exchange=exchange.upper(), currency=currency.upper(), timeout=_timeout(app))


@options.command("chain")
@click.argument("symbol")
@click.option("-e", "--expiry", required=True, metavar="DATE", help="Expiry YYYYMMDD (options expirations).")
@click.option("--type", "right", type=click.Choice(["call", "put"], case_sensitive=False), default=None,
              help="Only calls or only puts.")
@click.option("--strike-min", type=float, default=None, help="Lowest strike shown.")
@click.option("--strike-max", type=float, default=None, help="Highest strike shown.")
@click.option("--strikes", "limit", type=click.IntRange(1, 20), default=None,
              help="Strikes shown (nearest the money; default and most 20).")
@click.option("--greeks", is_flag=True, help="Implied volatility, delta, gamma, vega, theta (broker's model).")
@_underlying_options
@click.pass_obj
@output(_render_chain)
def chain(app: AppContext, symbol: str, expiry: str, right: str | None, strike_min: float | None,
          strike_max: float | None, limit: int | None, greeks: bool, sec_type: str, exchange: str,
          currency: str) -> dict[str, Any]:
    """One expiry of SYMBOL's chain: calls and puts of the strikes nearest the money (bounded)."""
    from trader.cli.portfolio import TRADER

    return app.call(TRADER, "option_chain", symbol.upper(), expiry, right=right[0].upper() if right else None,
                    strike_min=strike_min, strike_max=strike_max, greeks=greeks, limit=limit,
                    sec_type=sec_type.upper(), exchange=exchange.upper(), currency=currency.upper(),
                    timeout=_timeout(app))


def _render_snapshot(r: dict[str, Any], console: Any) -> None:
    console.print(f"{r['local_symbol']} ({r['sec_type']} {r['expiry']} {r['strike']:g}{r['right']}, "
                  f"underlying {_fmt(r.get('undPrice'))})")
    console.print(f"bid {_fmt(r.get('bid'))}  ask {_fmt(r.get('ask'))}  mid {_fmt(r.get('mid'))}  "
                  f"last {_fmt(r.get('last'))}  volume {_fmt(r.get('volume'), 0)}")
    console.print(f"IV {_fmt(r.get('impliedVol'), 4)}  delta {_fmt(r.get('delta'), 4)}  gamma "
                  f"{_fmt(r.get('gamma'), 4)}  vega {_fmt(r.get('vega'), 4)}  theta {_fmt(r.get('theta'), 4)}")
    console.print(f"intrinsic {_fmt(r.get('intrinsic'))}  time value {_fmt(r.get('time_value'))}")


def _selection_options(fn):
    from trader.cli.contracts import selection_options

    return selection_options(fn)


@options.command("snapshot")
@click.argument("contract")
@click.option("--sectype", "sec_type", type=click.Choice(["OPT", "FOP"], case_sensitive=False), default="OPT",
              show_default=True, help="OPT (stock/index options) or FOP (futures options).")
@click.option("--exchange", default="SMART", show_default=True, help="Exchange (futures options: e.g. CME).")
@click.option("--currency", default="USD", show_default=True, help="Currency.")
@_selection_options
@click.pass_obj
@output(_render_snapshot)
def snapshot(app: AppContext, contract: str, sec_type: str, exchange: str, currency: str,
             **selection: Any) -> dict[str, Any]:
    """One option's quote, IV and greeks.

    CONTRACT is an OCC symbol ("AAPL  270319C00250000"), or SYMBOL with --expiry --strike --right (or --conid).
    """
    from trader.cli.contracts import resolve_selected
    from trader.cli.portfolio import TRADER

    c = resolve_selected(app, contract, sec_type, exchange, currency, selection)
    return app.call(TRADER, "option_snapshot", int(c["con_id"]), timeout=_timeout(app))


def _render_implied(r: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    console.print(f"{r['symbol']} {r['expiry']}: spot {_fmt(r['underlying_price'])}, forward {_fmt(r['forward'])}, "
                  f"mean {_fmt(r['mean'])}, std {_fmt(r['std'])}, ATM IV {_fmt(r['atm_iv'], 4)} "
                  f"({r['strikes_used']} strikes)")
    table = Table(title="percentiles at expiry")
    for p in r["percentiles"]:
        table.add_column(f"{p['pct']}%", justify="right")
    table.add_row(*(_fmt(p["price"]) for p in r["percentiles"]))
    console.print(table)
    levels = Table(title="probability of finishing")
    for c in ("level", "below", "above"):
        levels.add_column(c, justify="right")
    for lv in r["levels"]:
        levels.add_row(_fmt(lv["level"]), f"{lv['prob_below']:.1%}", f"{lv['prob_above']:.1%}")
    console.print(levels)
    if r.get("chart"):
        console.print(f"chart: {r['chart']}", style="dim")


@options.command("implied")
@click.argument("symbol")
@click.option("-e", "--expiry", required=True, metavar="DATE", help="Expiry YYYYMMDD (options expirations).")
@click.option("--level", "levels", type=click.FloatRange(min=0, min_open=True), multiple=True, metavar="PRICE",
              help="A price to report P(below)/P(above) for (repeatable; default spot ±5%, ±10%).")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the PNG (default: the reports directory).")
@click.option("--no-chart", is_flag=True, help="Table only, no PNG.")
@click.option("--curve", is_flag=True, help="Include the density curve (101 points) in the output.")
@_underlying_options
@click.pass_obj
@output(_render_implied)
def implied(app: AppContext, symbol: str, expiry: str, levels: tuple[float, ...], chart_path: str | None,
            no_chart: bool, curve: bool, sec_type: str, exchange: str, currency: str) -> dict[str, Any]:
    """Risk-neutral distribution at expiry.

    Breeden–Litzenberger on SYMBOL's chain: from the mids, forward, mean, std, percentiles and P(below/above) each --level, with a PNG of the
    density (risk-neutral, not a forecast).
    """
    from pathlib import Path

    from trader.cli.portfolio import TRADER

    out = app.call(TRADER, "option_implied", symbol.upper(), expiry, levels=list(levels) or None,
                   sec_type=sec_type.upper(), exchange=exchange.upper(), currency=currency.upper(),
                   timeout=_timeout(app))
    if not no_chart:
        from trader.tools.charts import implied_chart

        path = Path(chart_path) if chart_path else \
            app.paths.report_dir / f"implied_{out['symbol']}_{out['expiry']}.png"
        out["chart"] = str(implied_chart(out["curve"], path, title=f"{out['symbol']} implied distribution at "
                                         f"{out['expiry']}", spot=out["underlying_price"], forward=out["forward"],
                                         percentiles=out["percentiles"]))
    if not curve:
        out.pop("curve", None)
    return out


def _order_command(action: str):
    def deco(fn):
        opts = [
            click.option("--reasoning", default="", help="With --propose: why (shown to the approver)."),
            click.option("--propose", "as_proposal", is_flag=True,
                         help="Propose the order for approval instead of placing it."),
            click.option("--tif", type=click.Choice(["DAY", "GTC", "IOC"], case_sensitive=False), default="DAY",
                         show_default=True, help="Time in force."),
            click.option("--limit", "limit", type=click.FloatRange(min=0, min_open=True), default=None,
                         help="Limit price per share of premium."),
            click.option("--market", is_flag=True, help="Market order (the default)."),
            click.option("-q", "--quantity", type=click.FloatRange(min=0, min_open=True), required=True, metavar="N",
                         help="Contracts."),
            click.option("-r", "--right", type=click.Choice(["C", "P"], case_sensitive=False),
                         required=True, help="C (call) or P (put)."),
            click.option("-s", "--strike", type=click.FloatRange(min=0, min_open=True), required=True, metavar="K",
                         help="Strike."),
            click.option("-e", "--expiry", required=True, metavar="DATE", help="Expiry (YYYYMMDD)."),
            click.option("--currency", default="USD", show_default=True, help="Currency."),
            click.option("--request-id", default=None, metavar="ID",
                         help="Your id for this action: a retry with it never executes twice."),
        ]
        for opt in opts:
            fn = opt(fn)
        return fn
    return deco


def _option_order(app: AppContext, action: str, symbol: str, *, expiry: str, strike: float, right: str,
                  quantity: float, market: bool, limit: float | None, tif: str, as_proposal: bool,
                  reasoning: str, currency: str, request_id: str | None, allow_short: bool) -> dict[str, Any]:
    from trader.cli.contracts import order_symbol, resolve_selected
    from trader.cli.portfolio import TRADER
    from trader.cli.trading import _place
    from trader.tools.options import parse_expiry

    if market and limit is not None:
        raise click.UsageError("give --market or --limit P, not both")
    try:
        exp = parse_expiry(expiry)
    except ValueError:
        raise click.UsageError(f"--expiry must be YYYYMMDD, got {expiry!r}") from None
    selection = {"expiry": exp, "strike": strike, "right": right.upper()[0], "multiplier": None,
                 "trading_class": None, "con_id": None}
    if as_proposal:
        from trader.cli.proposals import PROPOSE_TIMEOUT

        c = resolve_selected(app, symbol, "OPT", "SMART", currency, selection)
        return app.call(TRADER, "propose", order_symbol(c), action, quantity=quantity, limit_price=limit,
                        reasoning=reasoning, exchange=str(c.get("exchange") or "SMART"),
                        currency=str(c.get("currency") or currency), sec_type="OPT", allow_short=allow_short,
                        tif=tif.upper(), timeout=max(app.config.rpc_timeout, PROPOSE_TIMEOUT),
                        **({"request_id": request_id} if request_id is not None else {}))
    return _place(app, action, symbol, allow_short=allow_short, request_id=request_id, quantity=quantity,
                  amount=None, market=market, limit=limit, stop=None, stop_limit=None, trailing_pct=None,
                  trailing_amount=None, bracket=None, outside_rth=False, sec_type="OPT", exchange="SMART",
                  currency=currency, tif=tif, **selection)


def _render_order(r: dict[str, Any], console: Any) -> None:
    if "state" in r:  # a proposal
        console.print(f"proposal {r.get('id')}: {r.get('action')} {r.get('quantity')} {r.get('symbol')} "
                      f"({r.get('state')})")
        return
    from trader.cli.trading import _render_placed

    _render_placed(r, console)


@options.command("buy")
@click.argument("symbol")
@_order_command("BUY")
@click.pass_obj
@output(_render_order)
def buy(app: AppContext, symbol: str, **opts: Any) -> dict[str, Any]:
    """Buy options: -e EXPIRY -s STRIKE -r C|P -q N [--limit P] [--propose]."""
    return _option_order(app, "BUY", symbol, allow_short=False, **opts)


@options.command("sell")
@click.argument("symbol")
@_order_command("SELL")
@click.option("--short", "allow_short", is_flag=True,
              help="Sell more than held (write options): refused by the risk gate unless covered or allowed.")
@click.pass_obj
@output(_render_order)
def sell(app: AppContext, symbol: str, allow_short: bool, **opts: Any) -> dict[str, Any]:
    """Sell options (as options buy).

    Never more than held unless --short."""
    return _option_order(app, "SELL", symbol, allow_short=allow_short, **opts)


def _add_combo_commands() -> None:
    from trader.cli.combos import combo_cmd, vertical_cmd

    options.add_command(vertical_cmd)
    options.add_command(combo_cmd)


_add_combo_commands()
