"""Placing and managing orders: ``buy``, ``sell``, ``cancel``, ``cancel-all``, ``close``, ``resize-positions``,
``resolve``.

The CLI checks only the *shape* of the arguments (exactly one of --quantity/--amount, at most one order type);
everything else — structural validation, the holding check, the pre-trade risk gate, market hours — is
trader_service's job, so every order path is judged by the same code. A refusal comes back as the service's
exception (``RiskRejected``, ``InvalidOrder``, ``BrokerNotReady`` …) and becomes the JSON error document.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.cli.portfolio import TRADER, contract_kwargs, contract_options

# place_order waits up to ~2 s for a market fill and a bracket stages three legs: allow more than rpc_timeout.
ORDER_TIMEOUT = 15.0
# resize-positions places one order per position.
RESIZE_TIMEOUT = 120.0


def _order_timeout(app: AppContext) -> float:
    return max(app.config.rpc_timeout, ORDER_TIMEOUT)


def request_id_option(fn):
    """``--request-id ID``: name this order action yourself, so a retry after an unknown outcome is safe."""
    return click.option(
        "--request-id", default=None, metavar="ID",
        help="Your id for this action (1-64 of A-Z a-z 0-9 _.:-). A retry with the same id never executes "
             "twice: it gets the first answer. Default: a fresh id. Look one up: mmr orders --request ID.")(fn)


def tif_option(default: str):
    """``--tif DAY|GTC|IOC``: how long the order works (a bracket's exits are GTC when the order is GTC)."""
    return click.option("--tif", type=click.Choice(["DAY", "GTC", "IOC"], case_sensitive=False), default=default,
                        show_default=True,
                        help="Time in force: DAY (until the close), GTC (until cancelled), IOC (fill now or cancel).")


# --------------------------------------------------------------------------- rendering
def _render_placed(r: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    status = r.get("status", "")
    colour = "green" if status == "Filled" else "yellow" if status in ("Submitted", "PreSubmitted") else "white"
    line = f"{r.get('action')} {r.get('quantity', 0):g} {r.get('symbol')} → [{colour}]{escape(str(status))}[/]"
    if r.get("filled"):
        line += f", filled {r['filled']:g} @ {r.get('avg_fill_price') or 0:,.4g}"
    console.print(line)
    console.print(f"order ids: {', '.join(str(i) for i in r.get('order_ids', []))}", style="dim")
    if r.get("reducing_quantity") and r.get("opening_quantity"):
        console.print(f"reducing {r['reducing_quantity']:g}, opening {r['opening_quantity']:g}", style="dim")
    if r.get("risk_refused"):
        console.print(f"[yellow]opening part refused:[/] {escape(str(r['risk_refused']))}")


# --------------------------------------------------------------------------- buy / sell
def _order_options(fn):
    """Every option buy and sell share (applied bottom-up, so listed here in reverse help order)."""
    opts = [
        tif_option("DAY"),
        click.option("--outside-rth", is_flag=True, help="Allow the order to trade outside regular hours."),
        click.option("--bracket", type=(float, float), default=None, metavar="TP SL",
                     help="Attach a take-profit limit TP and a stop-loss SL (three orders in all)."),
        click.option("--trailing-amount", type=float, default=None, help="Trailing stop, trailing by X price."),
        click.option("--trailing-pct", type=float, default=None, help="Trailing stop, trailing by X percent."),
        click.option("--stop-limit", type=(float, float), default=None, metavar="STOP LIMIT",
                     help="Stop-limit order: triggers at STOP, then a limit order at LIMIT."),
        click.option("--stop", "stop", type=float, default=None, help="Stop order triggering at price P."),
        click.option("--limit", "limit", type=float, default=None, help="Limit order at price P."),
        click.option("--market", is_flag=True, help="Market order (the default order type)."),
        click.option("--amount", type=float, default=None,
                     help="Cash amount in USD, converted to whole shares at the current price (rounded down)."),
        click.option("--quantity", type=float, default=None, help="Number of shares/contracts."),
    ]
    fn = contract_options(fn)
    for opt in opts:
        fn = opt(fn)
    return fn


def build_request(action: str, symbol: str, *, quantity: float | None, amount: float | None, market: bool,
                  limit: float | None, stop: float | None, stop_limit: tuple[float, float] | None,
                  trailing_pct: float | None, trailing_amount: float | None,
                  bracket: tuple[float, float] | None, outside_rth: bool, allow_short: bool, sec_type: str,
                  exchange: str, currency: str, tif: str = "DAY"):
    """Turn buy/sell arguments into an ``OrderRequest`` (source=CLI); UsageError when their shape is wrong."""
    from trader.trading.models import Action, OrderSource, OrderType
    from trader.trading.orders import OrderRequest

    if (quantity is None) == (amount is None):
        raise click.UsageError("give exactly one of --quantity N or --amount USD")
    chosen = [name for name, given in (("--market", market), ("--limit", limit is not None),
                                       ("--stop", stop is not None), ("--stop-limit", stop_limit is not None),
                                       ("--trailing-pct", trailing_pct is not None),
                                       ("--trailing-amount", trailing_amount is not None)) if given]
    if len(chosen) > 1:
        raise click.UsageError(f"give one order type, not {' and '.join(chosen)}")
    order_type = OrderType.MARKET
    limit_price = stop_price = None
    if limit is not None:
        order_type, limit_price = OrderType.LIMIT, limit
    elif stop is not None:
        order_type, stop_price = OrderType.STOP, stop
    elif stop_limit is not None:
        order_type, (stop_price, limit_price) = OrderType.STOP_LIMIT, stop_limit
    elif trailing_pct is not None or trailing_amount is not None:
        order_type = OrderType.TRAILING_STOP
    take_profit, stop_loss = bracket if bracket is not None else (None, None)
    return OrderRequest(
        symbol=symbol.upper(), action=Action(action), quantity=quantity, amount=amount, order_type=order_type,
        limit_price=limit_price, stop_price=stop_price, trailing_percent=trailing_pct,
        trailing_amount=trailing_amount, take_profit=take_profit, stop_loss=stop_loss, outside_rth=outside_rth,
        allow_short=allow_short, tif=tif.upper(), source=OrderSource.CLI,
        **contract_kwargs(sec_type, exchange, currency),
    )


def _place(app: AppContext, action: str, symbol: str, allow_short: bool, request_id: str | None,
           **opts: Any) -> dict[str, Any]:
    from dataclasses import replace

    from trader.cli.contracts import SELECTION_FIELDS, needs_resolution, resolve_selected
    from trader.trading.contract_select import contract_multiplier

    selection = {k: opts.pop(k, None) for k in SELECTION_FIELDS}
    req = build_request(action, symbol, allow_short=allow_short, **opts)
    if needs_resolution(symbol, opts["sec_type"], selection):  # one contract, by conId, before anything is sent
        c = resolve_selected(app, symbol, opts["sec_type"], opts["exchange"], opts["currency"], selection)
        req = replace(req, symbol=str(c["symbol"]), con_id=int(c["con_id"]), sec_type=str(c["sec_type"]),
                      exchange=str(c.get("exchange") or req.exchange), currency=str(c.get("currency") or req.currency),
                      multiplier=contract_multiplier(c))
    return app.order_call(TRADER, "place_order", req, request_id=request_id, timeout=_order_timeout(app))


@click.command()
@click.argument("symbol")
@_order_options
@request_id_option
@click.pass_obj
@output(_render_placed)
def buy(app: AppContext, symbol: str, **opts: Any) -> dict[str, Any]:
    """Buy SYMBOL: --quantity N or --amount USD; market by default, or --limit/--stop/--stop-limit/--trailing-*.

    Validation and the pre-trade risk gate run in trader_service; a refusal is a RiskRejected/InvalidOrder
    error listing every failed rule.
    """
    return _place(app, "BUY", symbol, allow_short=False, **opts)


@click.command()
@click.argument("symbol")
@_order_options
@click.option("--short", "allow_short", is_flag=True, help="Allow selling more than held (open a short).")
@request_id_option
@click.pass_obj
@output(_render_placed)
def sell(app: AppContext, symbol: str, allow_short: bool, **opts: Any) -> dict[str, Any]:
    """Sell SYMBOL (same options as buy); never more than held unless --short.

    Validation and the pre-trade risk gate run in trader_service; a refusal is a RiskRejected/InvalidOrder
    error listing every failed rule.
    """
    from trader.errors import InvalidOrder

    try:
        return _place(app, "SELL", symbol, allow_short=allow_short, **opts)
    except InvalidOrder as exc:
        if "allow_short" not in str(exc):
            raise
        # The service names the request field; tell a CLI user the flag.
        raise InvalidOrder(f"{exc} (mmr: add --short)", exc.problems) from None


# --------------------------------------------------------------------------- cancel / close
def _render_cancel(r: dict[str, Any], console: Any) -> None:
    console.print(f"order {r.get('order_id')}: {r.get('status')}")


@click.command()
@click.argument("order_id", type=int)
@request_id_option
@click.pass_obj
@output(_render_cancel)
def cancel(app: AppContext, order_id: int, request_id: str | None) -> dict[str, Any]:
    """Cancel one open order by its order id (see `mmr orders`)."""
    return app.order_call(TRADER, "cancel_order", order_id, request_id=request_id, timeout=_order_timeout(app))


def _render_cancel_all(r: dict[str, Any], console: Any) -> None:
    ids = r.get("cancelled") or []
    console.print(f"cancelled {len(ids)} order(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))


@click.command("cancel-all")
@request_id_option
@click.pass_obj
@output(_render_cancel_all)
def cancel_all(app: AppContext, request_id: str | None) -> dict[str, Any]:
    """Cancel every open order."""
    return app.order_call(TRADER, "cancel_all", request_id=request_id, timeout=_order_timeout(app))


@click.command()
@click.argument("target")
@click.option("--quantity", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Close only this many shares (default: the whole position).")
@click.option("--limit", "limit_price", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Close with a limit order at price P (default: market).")
@tif_option("DAY")
@request_id_option
@click.pass_obj
@output(_render_placed)
def close(app: AppContext, target: str, quantity: float | None, limit_price: float | None, tif: str,
          request_id: str | None) -> dict[str, Any]:
    """Close (or reduce) a position, by row number from `mmr positions` or by symbol."""
    target = target.strip()
    return app.order_call(TRADER, "close_position", target if target.isdigit() else target.upper(),
                          quantity=quantity, limit_price=limit_price, tif=tif.upper(), request_id=request_id,
                          timeout=_order_timeout(app))


def _render_legs(r: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    for p in r.get("plan") or []:
        console.print(f"{p['action']} {p['quantity']:g} {p['symbol']}" + (" (dry run)" if r.get("dry_run") else ""))
    for res in r.get("results") or []:
        if "error" in res:
            console.print(f"[red]{escape(res.get('symbol', ''))}: {escape(res['error']['message'])}[/]")
        else:
            _render_placed(res, console)


@click.command()
@click.argument("target")
@click.option("--stop", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop order at price P.")
@click.option("--trailing-pct", type=click.FloatRange(0, 100, min_open=True, max_open=True), default=None,
              help="Trailing stop, trailing by X percent (instead of --stop).")
@click.option("--take-profit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also a take-profit limit at P (one-cancels-the-other with the stop).")
@click.option("--quantity", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Protect only this many (default: the whole position).")
@tif_option("GTC")
@request_id_option
@click.pass_obj
@output(_render_legs)
def protect(app: AppContext, target: str, stop: float | None, trailing_pct: float | None,
            take_profit: float | None, quantity: float | None, tif: str, request_id: str | None) -> dict[str, Any]:
    """Protective exits for a held position (symbol or row): --stop P or --trailing-pct X, optionally
    --take-profit P; GTC by default so they do not lapse at the close."""
    if (stop is None) == (trailing_pct is None):
        raise click.UsageError("give exactly one of --stop P and --trailing-pct X")
    target = target.strip()
    return app.order_call(TRADER, "protect_position", target if target.isdigit() else target.upper(), stop=stop,
                          trailing_pct=trailing_pct, take_profit=take_profit, quantity=quantity, tif=tif.upper(),
                          request_id=request_id, timeout=_order_timeout(app))


@click.command("to-market")
@click.argument("order_id", type=int)
@request_id_option
@click.pass_obj
@output(_render_placed)
def to_market(app: AppContext, order_id: int, request_id: str | None) -> dict[str, Any]:
    """Turn a working order (see `mmr orders`) into a market order; it passes the risk gate again."""
    return app.order_call(TRADER, "order_to_market", order_id, request_id=request_id, timeout=_order_timeout(app))


@click.command("close-all-positions")
@click.option("--dry-run", is_flag=True, help="Show the orders without placing any.")
@tif_option("DAY")
@request_id_option
@click.pass_obj
@output(_render_legs)
def close_all_positions(app: AppContext, dry_run: bool, tif: str, request_id: str | None) -> dict[str, Any]:
    """Close every position with one market order each (legs <request id>.<n>)."""
    if dry_run:
        return app.call(TRADER, "close_all_positions", dry_run=True, timeout=max(app.config.rpc_timeout, 10.0))
    return app.order_call(TRADER, "close_all_positions", tif=tif.upper(), request_id=request_id,
                          timeout=max(app.config.rpc_timeout, RESIZE_TIMEOUT))


# --------------------------------------------------------------------------- resize
def _render_resize(r: dict[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    target = r.get("target")
    head = f"total position value {r.get('total_before', 0):,.2f}"
    if target is not None:
        head += f" → target {target:,.2f}"
    for key in ("min_bound", "max_bound"):
        if r.get(key) is not None:
            head += f", {key.replace('_', ' ')} {r[key]:,.2f}"
    console.print(head)
    if not r.get("plan"):
        console.print("nothing to do: the total is already within the bounds")
        return
    table = Table(title="Resize plan" + (" (dry run)" if not r.get("results") else ""))
    for col in ("symbol", "action", "quantity", "from", "to", "result"):
        table.add_column(col)
    results = {x.get("symbol"): x for x in r.get("results") or []}
    for p in r["plan"]:
        res = results.get(p["symbol"])
        outcome = ""
        if res is not None:
            outcome = f"[red]{escape(res['error']['message'])}[/]" if "error" in res else str(res.get("status", ""))
        table.add_row(p["symbol"], p["action"], f"{p['quantity']:g}", _opt(p.get("current_quantity")),
                      _opt(p.get("target_quantity")), outcome)
    console.print(table)


def _opt(v: Any) -> str:
    return "" if v is None else f"{v:g}"


@click.command("resize-positions")
@click.option("--max-bound", type=click.FloatRange(min=0), default=None,
              help="Scale positions down so their total value is at most USD.")
@click.option("--min-bound", type=click.FloatRange(min=0), default=None,
              help="Scale positions up so their total value is at least USD.")
@click.option("--dry-run", is_flag=True, help="Show the plan without placing any order.")
@tif_option("DAY")
@request_id_option
@click.pass_obj
@output(_render_resize)
def resize_positions(app: AppContext, max_bound: float | None, min_bound: float | None,
                     dry_run: bool, tif: str, request_id: str | None) -> dict[str, Any]:
    """Scale every position proportionally so the total value lands within --min-bound/--max-bound."""
    if max_bound is None and min_bound is None:
        raise click.UsageError("give --max-bound USD or --min-bound USD (or both)")
    if max_bound is not None and min_bound is not None and min_bound > max_bound:
        raise click.UsageError(f"--min-bound {min_bound:g} is above --max-bound {max_bound:g}")
    if dry_run:
        return app.call(TRADER, "resize_positions", max_bound=max_bound, min_bound=min_bound, dry_run=True,
                        timeout=max(app.config.rpc_timeout, 10.0))
    return app.order_call(TRADER, "resize_positions", max_bound=max_bound, min_bound=min_bound, tif=tif.upper(),
                          request_id=request_id, timeout=max(app.config.rpc_timeout, RESIZE_TIMEOUT))


# --------------------------------------------------------------------------- resolve
def _render_contract(c: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{c.get('symbol')} — {c.get('long_name') or ''}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for k, v in c.items():
        if v not in (None, "", 0, 0.0) or k == "con_id":
            table.add_row(k, str(v))
    console.print(table)


@click.command()
@click.argument("symbol")
@contract_options
@click.pass_obj
@output(_render_contract)
def resolve(app: AppContext, symbol: str, sec_type: str, exchange: str, currency: str,
            **selection: Any) -> dict[str, Any]:
    """Resolve a symbol (or a local symbol: ESZ6, "AAPL  261218C00250000") to its IB contract; futures without
    --expiry give the front month; an ambiguous query lists at most 5 candidates with the flags that pick each."""
    return app.call(TRADER, "resolve", symbol.upper(), timeout=max(app.config.rpc_timeout, 10.0),
                    **contract_kwargs(sec_type, exchange, currency, selection))
