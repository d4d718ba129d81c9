"""The proposal pipeline: ``propose``, ``proposals`` (``proposals show ID``), ``approve``, ``reject``.

An agent with ``MMR_ROLE=proposer`` proposes; a person (or ``approver``) approves, which executes the
proposal through trader_service's single order chokepoint exactly once. All logic runs in trader_service
(`trader.trading.pipeline_service`); these commands shape arguments and render results.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.cli.portfolio import TRADER
from trader.cli.trading import request_id_option

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

    price = f" @ {p['limit_price']:g}" if p.get("limit_price") else " MKT"
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
                      f"{p['limit_price']:g}" if p.get("limit_price") else "MKT",
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
@click.option("--trailing-stop-pct", type=float, default=None, help="Trailing stop, trailing by X percent.")
@click.option("--exchange", default="SMART", show_default=True, help="Exchange.")
@click.option("--currency", default="USD", show_default=True, help="Currency.")
@click.option("--sectype", "sec_type", default="STK", show_default=True, help="Security type (STK, ETF, …).")
@click.pass_obj
@output(_render_one)
def propose(app: AppContext, symbol: str, action: str, market: bool, limit_price: float | None,
            quantity: float | None, amount: float | None, confidence: float | None, group: str | None,
            reasoning: str, bracket: tuple[float, float] | None, trailing_stop_pct: float | None,
            exchange: str, currency: str, sec_type: str) -> dict[str, Any]:
    """Propose a trade for approval; without --quantity/--amount it is sized automatically (ATR, confidence,
    liquidity, hard caps). Returns the proposal with the sizing breakdown and the what-if risk delta."""
    if market and limit_price is not None:
        raise click.UsageError("give --market or --limit P, not both")
    if quantity is not None and amount is not None:
        raise click.UsageError("give --quantity N or --amount USD, not both")
    tp, sl = bracket if bracket else (None, None)
    return app.call(TRADER, "propose", symbol.upper(), action.upper(), quantity=quantity, amount=amount,
                    limit_price=limit_price, confidence=confidence, group=group, reasoning=reasoning,
                    take_profit=tp, stop_loss=sl, trailing_stop_pct=trailing_stop_pct, exchange=exchange,
                    currency=currency, sec_type=sec_type, timeout=_timeout(app, PROPOSE_TIMEOUT))


BRIEF_FIELDS = ("id", "symbol", "action", "quantity", "amount_usd", "order_type", "limit_price", "confidence",
                "group", "state", "state_reason", "created_at", "expires_at", "order_ids")


@click.group(invoke_without_command=True)
@click.option("--all", "all_states", is_flag=True, help="Every proposal, not only pending ones.")
@click.option("--brief", is_flag=True,
              help="Only the fields an agent loop needs (no sizing detail or risk preview): a few tokens each.")
@click.pass_context
def proposals(ctx: click.Context, all_states: bool, brief: bool) -> None:
    """List pending proposals (--all: every state); `proposals show ID` for one in full."""
    if ctx.invoked_subcommand is None:
        app: AppContext = ctx.obj
        rows = app.call(TRADER, "proposals", all_states)
        if brief:
            rows = [{k: r.get(k) for k in BRIEF_FIELDS} for r in rows]
        app.emit(rows, _render_list)


@proposals.command("show")
@click.argument("proposal_id", type=int)
@click.pass_obj
@output(_render_one)
def show(app: AppContext, proposal_id: int) -> dict[str, Any]:
    """One proposal in full: sizing breakdown, risk preview, state history reason, order ids."""
    return app.call(TRADER, "proposal", proposal_id)


@click.command()
@click.argument("proposal_id", type=int)
@click.option("--key", default=None, help="Approver key (needed above the configured notional threshold).")
@request_id_option
@click.pass_obj
@output(_render_one)
def approve(app: AppContext, proposal_id: int, key: str | None, request_id: str | None) -> dict[str, Any]:
    """Approve a pending proposal: it is executed through the risk gate exactly once."""
    return app.order_call(TRADER, "approve_proposal", proposal_id, key, request_id=request_id,
                          timeout=_timeout(app, APPROVE_TIMEOUT))


@click.command()
@click.argument("proposal_id", type=int)
@click.option("--reason", required=True, help="Why it is rejected (kept with the proposal).")
@click.pass_obj
@output(_render_one)
def reject(app: AppContext, proposal_id: int, reason: str) -> dict[str, Any]:
    """Reject a pending proposal (an approved one is being executed and can no longer be rejected)."""
    return app.call(TRADER, "reject_proposal", proposal_id, reason)
