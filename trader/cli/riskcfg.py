"""The risk gate's settings: ``risk`` (limits and today's usage), ``risk set KEY VALUE`` and ``filter`` (the
symbol, exchange and security-type allow/deny lists; the minimum price is ``risk set min_price P``). Changes are validated, written to the user's ``trading_filters.yaml``,
audited (``risk_setting_changed``) and in force in trader_service at once; changing them is operator only."""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.cli.portfolio import TRADER

# The keys `risk set` accepts (trading_filters.yaml's scalar settings; the lists are `filter`'s).
SETTINGS = ("max_position_value_usd", "max_position_pct_nlv", "max_daily_loss_usd", "max_order_quantity",
            "max_open_orders", "max_orders_per_window", "order_window_seconds", "allow_extended_hours",
            "min_price")
LISTS = {"denylist": "symbol_denylist", "allowlist": "symbol_allowlist",
         "exchange-denylist": "exchange_denylist", "exchange-allowlist": "exchange_allowlist",
         "sectype-denylist": "sec_type_denylist", "sectype-allowlist": "sec_type_allowlist"}


def _render(r: dict[str, Any], console: Any) -> None:
    console.print_json(data=r)


@click.group(invoke_without_command=True)
@click.pass_context
def risk(ctx: click.Context) -> None:
    """The risk gate's limits as it enforces them, and today's usage (daily loss, open orders, order rate)."""
    if ctx.invoked_subcommand is None:
        app: AppContext = ctx.obj
        app.emit(app.call(TRADER, "risk_limits"), _render)


# a negative VALUE (-5) is the value, not an unknown option: the service then refuses it with its bounds
@risk.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key", type=click.Choice(SETTINGS))
@click.argument("value")
@click.pass_obj
@output(_render)
def risk_set(app: AppContext, key: str, value: str) -> dict[str, Any]:
    """Set one limit of trading_filters.yaml (checked against its bounds; operator only; audited)."""
    return app.call(TRADER, "risk_set", key, value)


def _render_lists(r: dict[str, Any], console: Any) -> None:
    limits = r.get("limits", r)
    for name, key in LISTS.items():
        console.print(f"{name}: {', '.join(limits.get(key) or []) or '(empty)'}")


@click.group("filter", invoke_without_command=True)
@click.pass_context
def filter_(ctx: click.Context) -> None:
    """The symbol and exchange allow/deny lists of the risk gate (an empty allowlist allows everything)."""
    if ctx.invoked_subcommand is None:
        app: AppContext = ctx.obj
        limits = app.call(TRADER, "risk_limits")["limits"]
        app.emit({name: limits[key] for name, key in LISTS.items()}, _render_lists)


@filter_.command("show")
@click.pass_obj
@output(_render_lists)
def filter_show(app: AppContext) -> dict[str, Any]:
    """Show the allow/deny lists."""
    limits = app.call(TRADER, "risk_limits")["limits"]
    return {name: limits[key] for name, key in LISTS.items()}


def _edit(app: AppContext, action: str, list_name: str, values: tuple[str, ...]) -> dict[str, Any]:
    return app.call(TRADER, "filter_edit", action, LISTS[list_name], list(values))


@filter_.command("add")
@click.argument("list_name", type=click.Choice(list(LISTS)))
@click.argument("values", nargs=-1, required=True)
@click.pass_obj
@output(_render)
def filter_add(app: AppContext, list_name: str, values: tuple[str, ...]) -> dict[str, Any]:
    """Add symbols (or exchanges) to a list (operator only; audited)."""
    return _edit(app, "add", list_name, values)


@filter_.command("remove")
@click.argument("list_name", type=click.Choice(list(LISTS)))
@click.argument("values", nargs=-1, required=True)
@click.pass_obj
@output(_render)
def filter_remove(app: AppContext, list_name: str, values: tuple[str, ...]) -> dict[str, Any]:
    """Remove symbols (or exchanges) from a list (operator only; audited)."""
    return _edit(app, "remove", list_name, values)
