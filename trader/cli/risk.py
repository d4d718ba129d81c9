"""Compact state for an agent's context window: ``portfolio-risk`` (``prisk``), ``portfolio-snapshot``
(``psnap``), ``portfolio-diff`` (``pdiff``) and ``session``. Computed in trader_service (`trader.pipeline`).

With ``--json`` prisk and session print a short view by default (what an agent polls every loop) and the full
document with ``--detail``; without ``--json`` (a person, the REPL) every one of them is drawn as Rich tables.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.cli.portfolio import TRADER

# portfolio-risk fetches daily bars for correlations (cached per day, slow only on the first call).
RISK_TIMEOUT = 60.0


# --------------------------------------------------------------------------- rendering (people, the REPL)
def _fmt(v: Any, spec: str = ",.0f") -> str:
    if v is None:
        return ""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format(v, spec)
    return str(v)


def _table(title: str, columns: list[str], rows: list[list[Any]], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for col in columns:
        table.add_column(escape(col))
    for row in rows:  # escaped: "[sym, qty]" is text here, not Rich markup
        table.add_row(*[escape(_fmt(v, ",.2f" if isinstance(v, float) else ",")) for v in row])
    console.print(table)


def render_risk(r: dict[str, Any], console: Any) -> None:
    """The risk report (full or brief) as a headline, warnings and position/group/cluster tables."""
    from rich.markup import escape

    console.print(f"[bold]{escape(r.get('summary', ''))}[/]")
    console.print(f"gross {r['gross_pct']:.1f}%  net {r['net_pct']:.1f}%  long {r['long_pct']:.1f}%  "
                  f"short {r['short_pct']:.1f}%  HHI {r['hhi']:.3f}")
    for w in r.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    if r.get("positions"):
        _table("Positions", ["symbol", "value", "% NLV", "level"],
               [[p["symbol"], p["value"], round(p["weight_pct"], 2), p["level"]] for p in r["positions"]], console)
    elif r.get("top"):
        _table(f"Largest positions (of {r.get('n', len(r['top']))})", ["symbol", "% NLV"], r["top"], console)
    groups = r.get("groups") or []
    if groups:
        rows = [[g["name"], round(g["used_pct"], 2), g["budget_pct"], "yes" if g["within"] else "NO"]
                if isinstance(g, dict) else [*g, ""] for g in groups]
        _table("Groups", ["group", "used %", "budget %", "within"], rows, console)
    clusters = r.get("clusters") or []
    if clusters:
        _table("Correlation clusters", ["symbols", "net %", "direction", "warning"],
               [[", ".join(c["symbols"]), round(c["net_pct"], 2), c["direction"], "yes" if c["warning"] else ""]
                for c in clusters], console)
    for n in r.get("notes") or []:
        console.print(f"note: {escape(n)}", style="dim")


def render_snapshot(s: dict[str, Any], console: Any) -> None:
    """The compact snapshot as an account line and positions, movers and orders tables."""
    pct = f" ({s['day%']:+.2f}%)" if s.get("day%") is not None else ""
    console.print(f"[bold]{s.get('ccy', '')} NLV {_fmt(s.get('nlv'))}[/]  cash {_fmt(s.get('cash'))}  "
                  f"day {_fmt(s.get('day'), '+,.0f')}{pct}  unrealized {_fmt(s.get('upnl'), '+,.0f')}  "
                  f"{s.get('n', 0)} positions  at {s.get('t', '')}")
    if s.get("pos"):
        _table("Positions", list(s["cols"]), s["pos"], console)
    if s.get("more"):
        console.print(f"… and {s['more']['n']} more positions worth {_fmt(s['more']['val'])}", style="dim")
    if s.get("mv"):
        _table("Top movers today", ["sym", "day", "day %"], s["mv"], console)
    if s.get("ord"):
        _table("Orders", list(s["ocols"]), s["ord"], console)


_DIFF_KINDS = (("nlv", "NLV [before, after]"), ("day", "day P&L [before, after]"), ("new", "new [sym, qty, px, val]"),
               ("closed", "closed [sym, qty]"), ("qty", "quantity [sym, before, after]"),
               ("pnl", "unrealized P&L [sym, before, after]"), ("placed", "placed [id, sym, side, qty]"),
               ("filled", "filled [id, sym, side, qty]"), ("cancelled", "cancelled [id, sym]"),
               ("gone", "gone (order ids)"))


def render_diff(d: dict[str, Any], console: Any) -> None:
    """The diff as one table row per change ("nothing changed" when so)."""
    if not d.get("changed"):
        console.print(f"nothing changed since {d.get('since')}")
        return
    rows = []
    for key, label in _DIFF_KINDS:
        items = d.get(key)
        if not items:
            continue
        if key in ("nlv", "day", "gone"):  # a single pair or a list of ids
            rows.append([label, " → ".join(_fmt(x) for x in items) if key != "gone" else ", ".join(map(str, items))])
        else:
            rows.extend([label, "  ".join(_fmt(x, ",") if isinstance(x, (int, float)) else str(x) for x in item)]
                        for item in items)
    _table(f"Changes {d.get('since')} → {d.get('t')}", ["change", "detail"], rows, console)


def render_session(s: dict[str, Any], console: Any) -> None:
    """Limits and remaining capacity as a table; the sizing settings as one line."""
    rows = [["max position (USD)", s.get("max_position_usd"), ""],
            ["max order quantity", s.get("max_order_quantity"), ""]]
    for key, label in (("daily_loss", "daily loss (USD)"), ("open_orders", "open orders")):
        block = s.get(key) or {}
        rows.append([label, block.get("limit"), block.get("remaining")])
    rate = s.get("order_rate") or {}
    rows.append([f"orders per {rate.get('window_seconds')} s", rate.get("limit"), rate.get("remaining")])
    _table(f"Session (NLV {_fmt(s.get('nlv'))})", ["limit", "value", "remaining"], rows, console)
    sizing = s.get("sizing") or {}
    console.print("sizing: " + "  ".join(f"{k}={v}" for k, v in sizing.items()), style="dim")


# --------------------------------------------------------------------------- commands
@click.command("portfolio-risk")
@click.option("--detail", is_flag=True, help="The full report: every position, group and cluster, and notes.")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Largest positions and correlation clusters listed in the default view.")
@click.pass_obj
@output(render_risk)
def portfolio_risk(app: AppContext, detail: bool, top: int) -> dict[str, Any]:
    """Exposure (gross/net/long/short % of NLV), HHI, warnings, the largest positions, groups near or over
    budget and the strongest direction-aware correlation clusters, with a plain-English summary (--detail:
    the full report)."""
    report = app.call(TRADER, "portfolio_risk", timeout=max(app.config.rpc_timeout, RISK_TIMEOUT))
    if detail or not app.json:
        return report
    from trader.trading.portfolio_risk import risk_brief

    return risk_brief(report, top=top)


@click.command("portfolio-snapshot")
@click.pass_obj
@output(render_snapshot)
def portfolio_snapshot(app: AppContext) -> dict[str, Any]:
    """Total value, day P&L, cash, top movers and positions in a compact form (~500 tokens for 20)."""
    return app.call(TRADER, "portfolio_snapshot")


@click.command("portfolio-diff")
@click.option("--since-key", default="default", show_default=True,
              help="Whose previous snapshot to compare with (one per caller/loop).")
@click.pass_obj
@output(render_diff)
def portfolio_diff(app: AppContext, since_key: str) -> dict[str, Any]:
    """Only what changed since this caller's previous portfolio-diff (positions, P&L moves, orders)."""
    return app.call(TRADER, "portfolio_diff", since_key)


@click.group("session", invoke_without_command=True)
@click.option("--detail", is_flag=True, help="Every sizing setting and today's P&L and usage as well.")
@click.pass_context
def session(ctx: click.Context, detail: bool) -> None:
    """The risk gate's limits and what is left of each: largest position, daily loss, open orders, order
    rate; the sizer's headline settings (--detail: every sizing setting and usage). `session set KEY VALUE`
    and `session reset` change the sizing settings."""
    if ctx.invoked_subcommand is not None:
        return
    app: AppContext = ctx.obj
    summary = app.call(TRADER, "session_summary")
    if not detail and app.json:
        from trader.trading.snapshot import session_brief

        summary = session_brief(summary)
    app.emit(summary, render_session)


def _render_sizing_change(r: dict[str, Any], console: Any) -> None:
    changed = ", ".join(f"{k} {r['old'].get(k)} → {v}" for k, v in r.get("new", {}).items()) or "nothing changed"
    console.print(f"sizing: {changed} ({r.get('file')})")


@session.command("set", context_settings={"ignore_unknown_options": True})  # VALUE may be negative: refused by bounds
@click.argument("key", type=click.Choice(["method", "base_position_usd", "risk_multiplier", "min_position_usd",
                                          "max_position_usd", "max_position_pct_nlv"]))
@click.argument("value")
@click.pass_obj
@output(_render_sizing_change)
def session_set(app: AppContext, key: str, value: str) -> dict[str, Any]:
    """Set one sizing setting (position_sizing.yaml), checked against its bounds, used from the next proposal."""
    return app.call(TRADER, "session_set", key, value)


@session.command("reset")
@click.pass_obj
@output(_render_sizing_change)
def session_reset(app: AppContext) -> dict[str, Any]:
    """Put the sizing settings back to the shipped defaults."""
    return app.call(TRADER, "session_reset")
