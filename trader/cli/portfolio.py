"""Reading the book: ``portfolio``, ``positions``, ``orders``, ``trades``, ``snapshot``, ``events`` — and the two
streaming commands ``listen`` (ticks) and ``watch`` (live portfolio monitor).

Every command only talks RPC to trader_service (no pandas, numpy, duckdb or ib_async here). ``listen`` and
``watch`` are the exception to "one JSON document": with ``--json`` they print JSON Lines, one object per tick or
refresh, flushed as it arrives, so an agent can read them as a stream.
"""

from __future__ import annotations

import math
import time
from typing import Any

import click

from trader.cli.core import AppContext, bound_rows, list_options, output

TRADER = "trader_service"


# --------------------------------------------------------------------------- formatting helpers
def _num(v: Any, places: int = 2) -> str:
    """A number for a table cell; blank for unknown (None/NaN)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float) and v.is_integer() and places == 0:
        return f"{v:,.0f}"
    return f"{v:,.{places}f}" if isinstance(v, (int, float)) else str(v)


def _qty(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _pnl(v: Any) -> str:
    """P&L coloured by sign."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    colour = "green" if v > 0 else "red" if v < 0 else "white"
    return f"[{colour}]{v:,.2f}[/]"


def _time(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (int, float)):
        return time.strftime("%m-%d %H:%M:%S", time.localtime(v))
    return str(v)[5:19].replace("T", " ")


def positions_table(rows: list[dict[str, Any]], title: str = "Positions"):
    """A Rich table of position rows (row numbers are what ``close N`` takes)."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("#", "symbol", "type", "quantity", "avg cost", "price", "value", "unrealized", "realized",
                "daily"):
        table.add_column(col, justify="left" if col in ("symbol", "type") else "right")
    for r in rows:
        table.add_row(str(r.get("row", "")), r.get("symbol", ""), r.get("sec_type", ""), _qty(r.get("quantity")),
                      _num(r.get("avg_cost")), _num(r.get("market_price")), _num(r.get("market_value")),
                      _pnl(r.get("unrealized_pnl")), _pnl(r.get("realized_pnl")), _pnl(r.get("daily_pnl")))
    return table


def _account_table(account: dict[str, Any], totals: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"Account ({account.get('currency') or 'USD'})", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    for key in ("net_liquidation", "cash", "buying_power"):
        table.add_row(key.replace("_", " "), _num(account.get(key)))
    for key in ("daily_pnl", "unrealized_pnl", "realized_pnl"):
        table.add_row(key.replace("_", " ").replace("pnl", "P&L"), _pnl(account.get(key)))
    table.add_row("gross position value", _num(totals.get("gross_value")))
    table.add_row("positions", str(totals.get("count", "")))
    return table


def _portfolio_renderable(data: dict[str, Any]):
    from rich.console import Group

    parts = [_account_table(data.get("account") or {}, data.get("totals") or {})]
    if len(data.get("cash") or []) > 1:  # several currencies: each balance and its base-currency value
        parts.append(_cash_table(data["cash"], (data.get("account") or {}).get("currency") or "base"))
    return Group(*parts, positions_table(data.get("positions") or []))


def _cash_table(rows: list[dict[str, Any]], base: str):
    from rich.table import Table

    table = Table(title="cash by currency")
    for col in ("currency", "balance", "rate", f"value ({base})"):
        table.add_column(col, justify="left" if col == "currency" else "right")
    for r in rows:
        rate, value = r.get("exchange_rate"), r.get("base_value")
        table.add_row(r["currency"], f"{r['balance']:,.2f}", "-" if rate is None else f"{rate:.4f}",
                      "-" if value is None else f"{value:,.2f}")
    return table


# --------------------------------------------------------------------------- portfolio / positions
def _render_portfolio(data: dict[str, Any], console: Any) -> None:
    console.print(_portfolio_renderable(data))


@click.command()
@click.pass_obj
@output(_render_portfolio)
def portfolio(app: AppContext) -> dict[str, Any]:
    """Account summary (net liquidation, cash, P&L) and every position with its row number."""
    return app.call(TRADER, "portfolio")


def _render_positions(rows: list[dict[str, Any]], console: Any) -> None:
    console.print(positions_table(rows) if rows else "no positions")


@click.command()
@click.pass_obj
@output(_render_positions)
def positions(app: AppContext) -> list[dict[str, Any]]:
    """Positions: quantity (signed), average cost, market value, P&L; `row` is what `close N` takes."""
    return app.call(TRADER, "positions")


# --------------------------------------------------------------------------- orders / trades
def _render_orders(rows: Any, console: Any) -> None:
    from rich.table import Table

    if isinstance(rows, dict):  # --request ID: one request's outcome
        console.print_json(data=rows)
        return
    if not rows:
        console.print("no open orders")
        return
    table = Table(title="Open orders")
    for col in ("id", "parent", "symbol", "side", "qty", "type", "price", "status", "filled", "avg fill"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r.get("order_id", "")), str(r.get("parent_id") or ""), r.get("symbol", ""),
                      r.get("action", ""), _qty(r.get("quantity")), r.get("order_type", "")
                      + (" +rth" if r.get("outside_rth") else ""), _order_price(r), r.get("status", ""),
                      _qty(r.get("filled")), _num(r.get("avg_fill_price") or None))
    console.print(table)


def _order_price(r: dict[str, Any]) -> str:
    """The prices that define an order, in one cell: limit, stop, trailing."""
    parts = []
    if r.get("limit_price") is not None:
        parts.append(f"lmt {_num(r['limit_price'])}")
    if r.get("stop_price") is not None:
        parts.append(f"stp {_num(r['stop_price'])}")
    if r.get("trailing_percent") is not None:
        parts.append(f"trail {r['trailing_percent']:g}%")
    return " ".join(parts)


@click.command()
@click.option("--request", "request_id", default=None, metavar="ID",
              help="Show what became of one order action (buy/sell/close/cancel/approve) by its request id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Return at most this many open orders (newest order id first).")
@click.pass_obj
@output(_render_orders)
def orders(app: AppContext, request_id: str | None, limit: int) -> Any:
    """Open orders at the broker, newest first (bracket legs show their parent id); --request ID: one request's
    outcome. Open orders are current state, so there is no --since."""
    if request_id is not None:
        return app.call(TRADER, "order_intent", request_id)
    rows = app.call(TRADER, "orders")
    return sorted(rows, key=lambda r: r.get("order_id") or 0, reverse=True)[:limit]


def _render_trades(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    if not rows:
        console.print("no fills")
        return
    table = Table(title="Fills (newest first)")
    for col in ("time", "symbol", "side", "shares", "price", "commission", "realized", "order", "exec id"):
        table.add_column(col)
    for r in rows:
        table.add_row(_time(r.get("time")), r.get("symbol", ""), r.get("side", ""), _qty(r.get("shares")),
                      _num(r.get("price")), _num(r.get("commission")), _pnl(r.get("realized_pnl")),
                      str(r.get("order_id", "")), r.get("exec_id", ""))
    console.print(table)


@click.command()
@list_options(50, "fills")
@click.pass_obj
@output(_render_trades)
def trades(app: AppContext, limit: int, since: Any) -> list[dict[str, Any]]:
    """Fills, newest first, with commissions and realized P&L."""
    # The service answers newest first, so the fills at or after --since are a prefix of its answer.
    return bound_rows(app.call(TRADER, "trades", limit=limit), limit, since, "time")


# --------------------------------------------------------------------------- quotes
def contract_options(fn):
    """``--sectype/--exchange/--currency`` and the selection flags (``trader/cli/contracts.py``: --expiry,
    --strike, --right, --multiplier, --trading-class, --conid), shared by every command that names an instrument."""
    from trader.cli.contracts import selection_options

    fn = selection_options(fn)
    fn = click.option("--currency", default="USD", show_default=True, help="Contract currency.")(fn)
    fn = click.option("--exchange", default="SMART", show_default=True, help="Exchange (SMART routes).")(fn)
    fn = click.option("--sectype", "sec_type", default="STK", show_default=True,
                      help="IB security type: STK, OPT, FUT, CASH, IND, ...")(fn)
    return fn


def contract_kwargs(sec_type: str, exchange: str, currency: str,
                    selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract fields (and any selection flags given) as trader_service's RPC keyword arguments."""
    from trader.cli.contracts import selection_kwargs

    return {"sec_type": sec_type.upper(), "exchange": exchange.upper(), "currency": currency.upper(),
            **selection_kwargs(selection or {})}


_QUOTE_FIELDS = ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume", "open", "high", "low",
                 "close")


def _render_snapshot(q: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{q.get('symbol')} (conId {q.get('con_id')}) at {_time(q.get('time'))}")
    for f in _QUOTE_FIELDS:
        table.add_column(f, justify="right")
    table.add_row(*(_num(q.get(f), 0 if "size" in f or f == "volume" else 2) for f in _QUOTE_FIELDS))
    console.print(table)


def _render_snapshots(data: dict[str, Any], console: Any) -> None:
    if "quotes" not in data:
        _render_snapshot(data, console)
        return
    from rich.table import Table

    table = Table(title="Quotes")
    for col in ("symbol", "last", "change", "change %", "volume", "ATR %"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    for q in data["quotes"]:
        table.add_row(q["symbol"], _num(q.get("last")), _pnl(q.get("change")), _pnl(q.get("change_pct")),
                      _num(q.get("volume"), 0), _num(q.get("atr_pct")))
    console.print(table)
    for sym, why in (data.get("missing") or {}).items():
        console.print(f"[yellow]{sym}[/]: {why}")


@click.command()
@click.argument("symbols", nargs=-1, required=True)
@contract_options
@click.pass_obj
@output(_render_snapshots)
def snapshot(app: AppContext, symbols: tuple[str, ...], sec_type: str, exchange: str,
             currency: str, **selection: Any) -> dict[str, Any]:
    """One symbol: its full quote (bid, ask, last, sizes, volume, day's open/high/low/close). Several: one compact
    row each — last, change, change_pct (vs the previous close), volume, atr_pct (14-day) — and `missing` with
    why, fetched in batches within IB's market-data line limit (stocks on SMART)."""
    if len(symbols) == 1:
        return app.call(TRADER, "snapshot", symbols[0].upper(), timeout=max(app.config.rpc_timeout, 10.0),
                        **contract_kwargs(sec_type, exchange, currency, selection))
    return app.call(TRADER, "snapshot_batch", [s.upper() for s in symbols],
                    timeout=max(app.config.rpc_timeout, 30.0 + 2.0 * len(symbols)))


# --------------------------------------------------------------------------- listen (JSON Lines)
def _tick_line(tick: dict[str, Any]) -> str:
    parts = [f"{_time(tick.get('time'))}  {tick.get('symbol', ''):<8}"]
    for f in ("bid", "ask", "last"):
        if tick.get(f) is not None:
            parts.append(f"{f} {_num(tick[f])}")
    if tick.get("volume") is not None:
        parts.append(f"vol {_num(tick['volume'], 0)}")
    return "  ".join(parts)


@click.command()
@click.argument("symbol")
@contract_options
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many ticks.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds.")
@click.pass_obj
def listen(app: AppContext, symbol: str, sec_type: str, exchange: str, currency: str, count: int | None,
           seconds: float | None, **selection: Any) -> None:
    """Stream a symbol's ticks until Ctrl-C (or --count/--seconds); with --json one JSON object per line."""
    from trader.cli.contracts import needs_resolution, resolve_selected

    kwargs: dict[str, Any] = contract_kwargs(sec_type, exchange, currency)
    if needs_resolution(symbol, sec_type, selection):  # a derivative: the service streams it by conId
        contract = resolve_selected(app, symbol, sec_type, exchange, currency, selection)
        kwargs = {**kwargs, "con_id": int(contract["con_id"])}
    sub_info = app.call(TRADER, "subscribe_ticks", symbol.upper(), timeout=max(app.config.rpc_timeout, 10.0),
                        **kwargs)
    console = None if app.json else app.console()
    if console is not None:
        console.print(f"listening to {sub_info['symbol']} (conId {sub_info['con_id']}) — Ctrl-C to stop",
                      style="dim")
    deadline = None if seconds is None else time.monotonic() + seconds
    # The service counts listeners per symbol and cancels the market data when the last one leaves.
    try:
        _stream(app, sub_info, console, count, deadline)
    finally:
        try:
            app.call(TRADER, "unsubscribe_ticks", symbol.upper(), **kwargs)
        except Exception:  # best effort: the stream is over either way
            pass


def _stream(app: AppContext, sub_info: dict[str, Any], console: Any, count: int | None,
            deadline: float | None) -> None:
    from trader.messaging.pubsub import Subscriber

    seen = 0
    with Subscriber(sub_info["pub"], [sub_info["topic"]], key=app.client_key()) as sub:
        try:
            while count is None or seen < count:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    break
                msg = sub.recv(timeout=1.0 if wait is None else min(wait, 1.0))
                if msg is None:
                    continue
                _topic, tick = msg
                seen += 1
                if console is None:
                    app.emit_line(tick)
                else:
                    console.print(_tick_line(tick), highlight=False)
        except KeyboardInterrupt:  # Ctrl-C is the normal way to stop a stream
            pass


# --------------------------------------------------------------------------- watch (Rich Live / JSON Lines)
@click.command()
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many refreshes (default: until Ctrl-C; 1 with --json).")
@click.pass_obj
def watch(app: AppContext, interval: float, count: int | None) -> None:
    """Live portfolio monitor (Rich Live); with --json one portfolio document per refresh (JSON Lines)."""
    if app.json:
        count = count or 1
        try:
            for i in range(count):
                app.emit_line(app.call(TRADER, "portfolio"))
                if i + 1 < count:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
        return

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    def frame() -> Any:
        stamp = Text(f"{time.strftime('%H:%M:%S')} — refreshing every {interval:g} s, Ctrl-C to stop",
                     style="dim")
        return Group(_portfolio_renderable(app.call(TRADER, "portfolio")), stamp)

    done = 0
    try:
        with Live(frame(), console=app.console(), auto_refresh=False) as live:
            done = 1
            while count is None or done < count:
                time.sleep(interval)
                live.update(frame(), refresh=True)
                done += 1
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------- events (audit trail)
def _render_events(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        console.print("no events")
        return
    table = Table(title="Audit trail")
    for col in ("id", "time", "kind", "correlation", "payload"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.get("id", "")), _time(r.get("ts")), r.get("kind", ""), r.get("correlation_id") or "", escape(_payload_summary(r.get("payload"))))
    console.print(table)


def _payload_summary(payload: Any, width: int = 160) -> str:
    """``key=value`` pairs of the known fields, cut to ``width`` (the JSON output keeps the whole payload)."""
    from trader.cli.core import to_json

    if not isinstance(payload, dict):
        return to_json(payload)[:width]
    text = " ".join(f"{k}={v if isinstance(v, (str, int, float)) else to_json(v)}"
                    for k, v in payload.items() if v is not None)
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.option("--kind", default=None,
              help="Only events of this kind (fill, order_submitted, order_status, ...); an unknown kind is an "
                   "error that lists the known ones.")
@click.option("--since-id", type=click.IntRange(min=0), default=0, show_default=True,
              help="Only events with an id greater than this (page through with --oldest-first and the last id).")
@click.option("--correlation-id", default=None, help="Only events of one order/proposal story.")
@list_options(50, "events")
@click.option("--oldest-first", is_flag=True, help="Oldest first (for paging forward with --since-id).")
@click.pass_obj
@output(_render_events)
def events(app: AppContext, kind: str | None, since_id: int, correlation_id: str | None, limit: int, since: Any,
           oldest_first: bool) -> list[dict[str, Any]]:
    """The audit trail, newest first: every order submission, status change, fill, commission, rejection and
    reconnect."""
    return app.call(TRADER, "events", since_id=since_id, kind=kind, correlation_id=correlation_id, limit=limit,
                    since=since.isoformat() if since else None, newest_first=not oldest_first)
