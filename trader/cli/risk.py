"""Compact state for an agent's context window: ``portfolio-risk`` (``prisk``), ``portfolio-snapshot``
(``psnap``), ``portfolio-diff`` (``pdiff``) and ``session``. Computed in trader_service (`trader.pipeline`)."""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.cli.portfolio import TRADER

# portfolio-risk fetches daily bars for correlations (cached per day, slow only on the first call).
RISK_TIMEOUT = 60.0


def _render_risk(r: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    console.print(f"[bold]{escape(r.get('summary', ''))}[/]")
    console.print(f"gross {r['gross_pct']:.1f}%  net {r['net_pct']:.1f}%  long {r['long_pct']:.1f}%  "
                  f"short {r['short_pct']:.1f}%  HHI {r['hhi']:.3f}")
    for w in r.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def _render_compact(d: dict[str, Any], console: Any) -> None:
    console.print_json(data=d)


@click.command("portfolio-risk")
@click.pass_obj
@output(_render_risk)
def portfolio_risk(app: AppContext) -> dict[str, Any]:
    """Exposure (gross/net/long/short % of NLV), HHI concentration, position and group warnings,
    direction-aware correlation clusters, and a plain-English summary."""
    return app.call(TRADER, "portfolio_risk", timeout=max(app.config.rpc_timeout, RISK_TIMEOUT))


@click.command("portfolio-snapshot")
@click.pass_obj
@output(_render_compact)
def portfolio_snapshot(app: AppContext) -> dict[str, Any]:
    """Total value, day P&L, cash, top movers and positions in a compact form (~500 tokens for 20)."""
    return app.call(TRADER, "portfolio_snapshot")


@click.command("portfolio-diff")
@click.option("--since-key", default="default", show_default=True,
              help="Whose previous snapshot to compare with (one per caller/loop).")
@click.pass_obj
@output(_render_compact)
def portfolio_diff(app: AppContext, since_key: str) -> dict[str, Any]:
    """Only what changed since this caller's previous portfolio-diff (positions, P&L moves, orders)."""
    return app.call(TRADER, "portfolio_diff", since_key)


@click.command("session")
@click.pass_obj
@output(_render_compact)
def session(app: AppContext) -> dict[str, Any]:
    """Sizing settings, remaining daily loss capacity and remaining open-order capacity."""
    return app.call(TRADER, "session_summary")
