"""The proposal pipeline: ``propose``, ``proposals`` (``proposals show ID``), ``approve``, ``reject``.

An agent with ``MMR_ROLE=proposer`` proposes; a person (or ``approver``) approves, which executes the
proposal through trader_service's single order chokepoint exactly once. All logic runs in trader_service
(`trader.trading.pipeline_service`); these commands shape arguments and render results.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.contracts import needs_resolution, order_symbol, resolve_selected, selection_options
from trader.cli.core import AppContext, bound_rows, list_options, output
from trader.cli.portfolio import TRADER
from trader.cli.trading import request_id_option, tif_option

# propose may fetch daily bars for sizing and correlations; approve places an order (up to ~2 s for a fill).
PROPOSE_TIMEOUT = 30.0
APPROVE_TIMEOUT = 20.0


def _timeout(app: AppContext, floor: float) -> float:
    return max(app.config.rpc_timeout, floor)


# --------------------------------------------------------------------------- rendering
def _size_text(p: dict[str, Any]) -> str:
    if p.get("quantity") is not None:
        return f"{p['quantity']:g}"
    if p.get("amount_usd") is not None:
        return f"${p['amount_usd']:,.2f}"
    return "?"


def _render_one(p: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    price = f" @ {p['limit_price']:g}" if p.get("limit_price") else \
        f" STP {p['stop_price']:g}" if p.get("stop_price") else " MKT"
    console.print(f"[bold]#{p['id']}[/] {p['action']} {_size_text(p)} {p['symbol']}{price} — {p['state']}"
                  + (f" ({escape(p['state_reason'])})" if p.get("state_reason") else ""))
    if p.get("reasoning"):
        console.print(f"reasoning: {escape(p['reasoning'])}", style="dim")
    sizing = p.get("sizing_breakdown") or (p.get("sizing") or {}).get("breakdown")
    if sizing:
        console.print(f"sizing: {escape(sizing)}")
    preview = p.get("risk_preview") or {}
    for w in preview.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {escape(str(w))}")
    what_if = preview.get("what_if") or {}
    if what_if.get("summary_after"):
        console.print(f"after the trade: {escape(what_if['summary_after'])}", style="dim")
    if preview.get("combo_quote") or preview.get("margin_what_if"):  # a combo: its legs next to the net limit
        from trader.cli.combos import render_quote

        render_quote(preview.get("combo_quote"), preview.get("margin_what_if"), p.get("limit_price"),
                      p.get("action"), console)
    if p.get("order_ids"):
        console.print(f"order ids: {', '.join(map(str, p['order_ids']))}", style="dim")


def _render_list(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    if not rows:
        console.print("no proposals")
        return
    table = Table(title="Proposals")
    for col in ("id", "state", "action", "size", "symbol", "limit", "confidence", "group", "expires"):
        table.add_column(col)
    for p in rows:
        table.add_row(str(p["id"]), p["state"], p["action"], _size_text(p), p["symbol"],
                      f"{p['limit_price']:g}" if p.get("limit_price") else f"STP {p['stop_price']:g}"
                      if p.get("stop_price") else ("MKT" if "order_type" in p else ""),
                      f"{p['confidence']:.2f}" if p.get("confidence") is not None else "",
                      p.get("group") or "", (p.get("expires_at") or "")[:16])
    console.print(table)


# --------------------------------------------------------------------------- commands
@click.command()
@click.argument("symbol")
@click.argument("action", type=click.Choice(["BUY", "SELL"], case_sensitive=False))
@click.option("--market", is_flag=True, help="Market order (the default).")
@click.option("--limit", "limit_price", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Limit order at price P.")
@click.option("--quantity", type=click.FloatRange(min=0, min_open=True), default=None, help="Shares.")
@click.option("--amount", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Cash amount in USD (converted to shares when approved).")
@click.option("--confidence", type=click.FloatRange(0, 1), default=None, help="0..1: scales the automatic size.")
@click.option("--group", default=None, help="Position group the trade belongs to (budget checked).")
@click.option("--reasoning", default="", help="Why: shown to the approver.")
@click.option("--bracket", type=(float, float), default=None, metavar="TP SL",
              help="Attach a take-profit TP and a stop-loss SL.")
@click.option("--trailing-stop-pct", type=click.FloatRange(0, 100, min_open=True, max_open=True), default=None,
              help="Make it a trailing-stop order (TRAIL) trailing by X percent: a SELL sells once the price falls "
                   "X% from its high (no --limit or --bracket with it).")
@click.option("--short", "allow_short", is_flag=True, help="A SELL may go beyond what is held (open a short).")
@tif_option("DAY")
@click.option("--exchange", default="SMART", show_default=True, help="Exchange.")
@click.option("--currency", default="USD", show_default=True, help="Currency.")
@click.option("--sectype", "sec_type", default="STK", show_default=True,
              help="IB security type: STK (also exchange-traded funds), OPT, FUT, CASH, ….")
@click.option("--request-id", default=None, metavar="ID",
              help="Your id for this proposal (1-64 of A-Z a-z 0-9 _.:-): a retry with it returns the same "
                   "proposal, never a second one.")
@selection_options
@click.pass_obj
@output(_render_one)
def propose(app: AppContext, symbol: str, action: str, market: bool, limit_price: float | None,
            quantity: float | None, amount: float | None, confidence: float | None, group: str | None,
            reasoning: str, bracket: tuple[float, float] | None, trailing_stop_pct: float | None,
            allow_short: bool, tif: str, exchange: str, currency: str, sec_type: str,
            request_id: str | None, **selection: Any) -> dict[str, Any]:
    """Propose a trade for approval; without --quantity/--amount it is sized automatically (ATR, confidence,
    liquidity, hard caps). It is checked as approval will check it: what would be refused there (a malformed
    order, a SELL beyond the holding without --short) is refused now; the risk gate's what-if failures are
    listed in risk_preview.warnings. Returns the proposal with the sizing breakdown and the what-if risk delta."""
    if market and limit_price is not None:
        raise click.UsageError("give --market or --limit P, not both")
    if quantity is not None and amount is not None:
        raise click.UsageError("give --quantity N or --amount USD, not both")
    tp, sl = bracket if bracket else (None, None)
    if needs_resolution(symbol, sec_type, selection):  # a derivative: propose its one contract (local symbol)
        c = resolve_selected(app, symbol, sec_type, exchange, currency, selection)
        symbol, sec_type = order_symbol(c), str(c["sec_type"])
        exchange, currency = str(c.get("exchange") or exchange), str(c.get("currency") or currency)
    return app.call(TRADER, "propose", symbol.upper(), action.upper(), quantity=quantity, amount=amount,
                    limit_price=limit_price, confidence=confidence, group=group, reasoning=reasoning,
                    take_profit=tp, stop_loss=sl, trailing_stop_pct=trailing_stop_pct, exchange=exchange,
                    currency=currency, sec_type=sec_type, allow_short=allow_short, tif=tif.upper(),
                    timeout=_timeout(app, PROPOSE_TIMEOUT),
                    **({"request_id": request_id} if request_id is not None else {}))


# --brief: what an agent needs to pick the proposals to act on; execution results only once there are some.
BRIEF_FIELDS = ("id", "symbol", "action", "quantity", "amount_usd", "state", "confidence", "state_reason",
                "filled_quantity", "avg_fill_price")


def brief_row(r: dict[str, Any], now: Any) -> dict[str, Any]:
    """One proposal in a few tokens: the BRIEF_FIELDS that say something (no nulls, no empty reason; whole
    numbers as ints) and ``age_min``, minutes since it was proposed. ``proposals show ID`` has the rest."""
    from trader.cli.core import as_utc

    row: dict[str, Any] = {}
    for k in BRIEF_FIELDS:
        v = r.get(k)
        if v is None or v == "":
            continue
        row[k] = int(v) if isinstance(v, float) and v.is_integer() else v
    created = as_utc(r.get("created_at"))
    if created is not None:
        row["age_min"] = max(0, int((now - created).total_seconds() // 60))
    return row


STATES = ("PENDING", "APPROVED", "REJECTED", "EXPIRED", "FAILED", "EXECUTED")


@click.group(invoke_without_command=True)
@click.option("--all", "all_states", is_flag=True, help="Every proposal, not only pending ones.")
@click.option("--brief", is_flag=True,
              help="Only the fields an agent loop needs (no sizing detail or risk preview): a few tokens each.")
@click.option("--status", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Only proposals in this state (repeatable).")
@list_options(5, "proposals")
@click.pass_context
def proposals(ctx: click.Context, all_states: bool, brief: bool, states: tuple[str, ...], limit: int,
              since: Any) -> None:
    """List proposals newest first, at most --limit (pending only; --all: every state; --status STATE);
    `proposals show ID` for one in full."""
    if ctx.invoked_subcommand is None:
        app: AppContext = ctx.obj
        wanted = [x.upper() for x in states] or None
        rows = app.call(TRADER, "proposals", all_states, states=wanted) if wanted else \
            app.call(TRADER, "proposals", all_states)
        rows = bound_rows(sorted(rows, key=lambda r: r.get("id") or 0, reverse=True), limit, since, "created_at",
                          newest_first=False)  # ids grow with time: newest first by id
        if brief:
            from datetime import UTC, datetime

            now = datetime.now(UTC)
            rows = [brief_row(r, now) for r in rows]
        app.emit(rows, _render_list)


@proposals.command("show")
@click.argument("proposal_id", type=int)
@click.pass_obj
@output(_render_one)
def show(app: AppContext, proposal_id: int) -> dict[str, Any]:
    """One proposal in full: sizing breakdown, risk preview, state history reason, order ids."""
    return app.call(TRADER, "proposal", proposal_id)


def _selection_options(fn):
    """``--all`` with ``--symbol`` / ``--older-than`` filters, for approve and reject."""
    for opt in (
        click.option("--older-than", type=click.FloatRange(min=0), default=None, metavar="MINUTES",
                     help="With --all: only proposals created more than MINUTES ago."),
        click.option("--symbol", default=None, help="With --all: only proposals for this symbol."),
        click.option("--all", "all_pending", is_flag=True, help="Every pending proposal (narrowed by the filters)."),
    ):
        fn = opt(fn)
    return fn


def _selected(app: AppContext, proposal_id: int | None, all_pending: bool, symbol: str | None,
              older_than: float | None) -> list[int] | None:
    """The pending proposal ids --all selects (None: a single PROPOSAL_ID was given)."""
    from datetime import UTC, datetime, timedelta

    if (proposal_id is None) == (not all_pending):
        raise click.UsageError("give a PROPOSAL_ID or --all (with optional --symbol / --older-than)")
    if proposal_id is not None:
        if symbol or older_than is not None:
            raise click.UsageError("--symbol and --older-than only go with --all")
        return None
    cutoff = datetime.now(UTC) - timedelta(minutes=older_than) if older_than is not None else None
    rows = app.call(TRADER, "proposals", False)
    return [r["id"] for r in rows if (not symbol or r["symbol"] == symbol.upper())
            and (cutoff is None or datetime.fromisoformat(r["created_at"]) < cutoff)]


def _each(ids: list[int], act: Any) -> dict[str, Any]:
    """Run ``act(id, n)`` for every id; each outcome (or error) is reported, none hides another."""
    results = []
    for n, pid in enumerate(ids):
        try:
            results.append(act(pid, n))
        except click.UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - one refusal must not stop the others
            results.append({"id": pid, "error": {"type": type(exc).__name__, "message": str(exc)}})
    return {"selected": ids, "results": results, "failed": sum(1 for r in results if "error" in r)}


def _render_many(r: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    if "results" not in r:
        _render_one(r, console)
        return
    if not r["results"]:
        console.print("no pending proposal matches")
    for p in r["results"]:
        if "error" in p:
            console.print(f"[red]#{p['id']}: {escape(p['error']['message'])}[/]")
        else:
            _render_one(p, console)


@click.command()
@click.argument("proposal_id", type=int, required=False)
@_selection_options
@click.option("--key", default=None, help="Approver key (needed above the configured notional threshold).")
@request_id_option
@click.pass_obj
@output(_render_many)
def approve(app: AppContext, proposal_id: int | None, all_pending: bool, symbol: str | None,
            older_than: float | None, key: str | None, request_id: str | None) -> dict[str, Any]:
    """Approve a pending proposal (or --all of them, narrowed by --symbol / --older-than): each is executed
    through the risk gate exactly once (with --all and --request-id R, proposal n runs as R.n)."""
    ids = _selected(app, proposal_id, all_pending, symbol, older_than)

    def one(pid: int, n: int | None = None) -> dict[str, Any]:
        rid = request_id if n is None or request_id is None else f"{request_id}.{n}"
        return app.order_call(TRADER, "approve_proposal", pid, key, request_id=rid,
                              timeout=_timeout(app, APPROVE_TIMEOUT))

    return one(proposal_id) if ids is None else _each(ids, one)


@click.command()
@click.argument("proposal_id", type=int, required=False)
@_selection_options
@click.option("--reason", required=True, help="Why it is rejected (kept with the proposal).")
@click.pass_obj
@output(_render_many)
def reject(app: AppContext, proposal_id: int | None, all_pending: bool, symbol: str | None,
           older_than: float | None, reason: str) -> dict[str, Any]:
    """Reject a pending proposal (or --all of them, narrowed by --symbol / --older-than); an approved one is
    being executed and can no longer be rejected."""
    ids = _selected(app, proposal_id, all_pending, symbol, older_than)
    if ids is None:
        return app.call(TRADER, "reject_proposal", proposal_id, reason)
    return _each(ids, lambda pid, n: app.call(TRADER, "reject_proposal", pid, reason))
