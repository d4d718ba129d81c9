"""Position groups: ``group list|create|add|remove|set|show|delete``.

A group is a named basket of symbols with a budget (% of NLV, gross). A proposal tagged ``--group NAME``
that would push the group over budget is flagged in its preview, or refused when ``group_budget_mode`` is
``reject`` (trader.yaml).
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output, service_up
from trader.cli.portfolio import TRADER

_BUDGET = click.FloatRange(0, 100)


def _render_group(g: dict[str, Any], console: Any) -> None:
    if "deleted" in g:
        console.print(f"deleted group {g['deleted']}")
        return
    used = f", using {g['used_pct']:.1f}%" if g.get("used_pct") is not None else ""
    console.print(f"[bold]{g['name']}[/] budget {g['budget_pct']:g}% of NLV{used}: "
                  f"{', '.join(g['symbols']) or '(no symbols)'}")


def _render_groups(rows: list[dict[str, Any]], console: Any) -> None:
    if not rows:
        console.print("no position groups")
    for g in rows:
        _render_group(g, console)


def check_symbols(app: AppContext, symbols: list[str]) -> list[str]:
    """Refuse symbols the broker cannot resolve (``UnknownSymbol`` naming every one) before they are stored.

    The rule: a symbol is refused only when the broker answers that it has no such contract. When the broker
    cannot be asked (trader_service down, broker not connected), the symbols are accepted as given and the
    returned warnings say they were not checked."""
    from trader.errors import AmbiguousContract, ContractNotFound, UnknownSymbol

    if not service_up(app, TRADER):
        return ["symbols not checked: trader_service is down"]
    unknown = []
    for sym in symbols:
        try:
            app.call(TRADER, "resolve", sym, timeout=max(app.config.rpc_timeout, 10.0))
        except AmbiguousContract:  # several listings: the symbol exists
            continue
        except ContractNotFound:
            unknown.append(sym)
        except Exception as exc:  # broker down or slow: cannot tell, so do not refuse
            return [f"symbols not checked: {type(exc).__name__}: {exc}"]
    if unknown:
        raise UnknownSymbol(f"the broker knows no contract for {', '.join(unknown)}: nothing was added")
    return []


def _call(app: AppContext, action: str, **kw: Any) -> Any:
    return app.call(TRADER, "groups", action, **kw)


@click.group()
def group() -> None:
    """Position groups with a budget (% of NLV) checked when a tagged proposal is made."""


@group.command("list")
@click.pass_obj
@output(_render_groups)
def list_groups(app: AppContext) -> list[dict[str, Any]]:
    """Every group with its budget, symbols and current use."""
    return _call(app, "list")


@group.command()
@click.argument("name")
@click.option("--budget", type=_BUDGET, required=True, help="Budget in % of NLV (gross exposure).")
@click.pass_obj
@output(_render_group)
def create(app: AppContext, name: str, budget: float) -> dict[str, Any]:
    """Create a group NAME with a budget."""
    return _call(app, "create", name=name, budget_pct=budget)


@group.command()
@click.argument("name")
@click.argument("symbols", nargs=-1, required=True)
@click.pass_obj
@output(_render_group)
def add(app: AppContext, name: str, symbols: tuple[str, ...]) -> dict[str, Any]:
    """Add symbols to group NAME (each must resolve at the broker when it is connected)."""
    wanted = [s.upper() for s in symbols]
    warnings = check_symbols(app, wanted)
    out = _call(app, "add", name=name, symbols=wanted)
    return {**out, "warnings": warnings} if warnings else out


@group.command()
@click.argument("name")
@click.argument("symbols", nargs=-1, required=True)
@click.pass_obj
@output(_render_group)
def remove(app: AppContext, name: str, symbols: tuple[str, ...]) -> dict[str, Any]:
    """Remove symbols from group NAME."""
    return _call(app, "remove", name=name, symbols=[s.upper() for s in symbols])


@group.command("set")
@click.argument("name")
@click.option("--budget", type=_BUDGET, required=True, help="New budget in % of NLV.")
@click.pass_obj
@output(_render_group)
def set_budget(app: AppContext, name: str, budget: float) -> dict[str, Any]:
    """Change group NAME's budget."""
    return _call(app, "set", name=name, budget_pct=budget)


@group.command()
@click.argument("name")
@click.pass_obj
@output(_render_group)
def show(app: AppContext, name: str) -> dict[str, Any]:
    """Group NAME in full."""
    return _call(app, "show", name=name)


@group.command()
@click.argument("name")
@click.pass_obj
@output(_render_group)
def delete(app: AppContext, name: str) -> dict[str, Any]:
    """Delete group NAME."""
    return _call(app, "delete", name=name)
