"""Universes: ``universe list|show|create|add|import|remove|delete`` (stored by data_service in DuckDB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, output, service_up

DATA = "data_service"


def _render_list(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("name", "symbols", "resolved", "description")
    for r in rows:
        table.add_row(r["name"], str(r["symbols"]), str(r["resolved"]), r["description"])
    console.print(table)


def _render_show(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("symbol", "sec type", "exchange", "currency", "conid")
    for r in rows:
        table.add_row(r["symbol"], r["sec_type"], r["exchange"], r["currency"], str(r["conid"] or ""))
    console.print(table)


@click.group()
def universe() -> None:
    """Named symbol lists for downloads, scans and backtests."""


@universe.command("list")
@click.pass_obj
@output(_render_list)
def universe_list(app: AppContext) -> list[dict[str, Any]]:
    """Every universe with its symbol count (read from the store directly when data_service is down)."""
    if service_up(app, DATA):
        return app.call(DATA, "universe_list")
    return _local_store(app).names()


@universe.command("show")
@click.argument("name")
@click.pass_obj
@output(_render_show)
def universe_show(app: AppContext, name: str) -> list[dict[str, Any]]:
    """Symbols of a universe (read from the store directly when data_service is down)."""
    if service_up(app, DATA):
        return app.call(DATA, "universe_show", name)
    import dataclasses

    return [dataclasses.asdict(m) for m in _local_store(app).members(name)]


def _local_store(app: AppContext):  # noqa: ANN202 - UniverseStore, imported lazily
    from trader.data.store import state_store
    from trader.data.universes import UniverseStore

    return UniverseStore(state_store(app.paths.data_dir))


@universe.command("create")
@click.argument("name")
@click.argument("symbols", nargs=-1)
@click.option("--description", default="")
@click.pass_obj
@output()
def universe_create(app: AppContext, name: str, symbols: tuple[str, ...], description: str) -> dict[str, Any]:
    """Create a universe, optionally with symbols (each must resolve at the broker when it is connected)."""
    from trader.cli.groups import check_symbols

    warnings = check_symbols(app, [s.upper() for s in symbols]) if symbols else []
    out = app.call(DATA, "universe_create", name, list(symbols), description)
    return {**out, "warnings": warnings} if warnings and isinstance(out, dict) else out


@universe.command("add")
@click.argument("name")
@click.argument("symbols", nargs=-1, required=True)
@click.pass_obj
@output()
def universe_add(app: AppContext, name: str, symbols: tuple[str, ...]) -> dict[str, Any]:
    """Add symbols to a universe (each must resolve at the broker when it is connected)."""
    from trader.cli.groups import check_symbols

    warnings = check_symbols(app, [s.upper() for s in symbols])
    out = app.call(DATA, "universe_add", name, list(symbols))
    return {**out, "warnings": warnings} if warnings else out


@universe.command("import")
@click.argument("name")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@output()
def universe_import(app: AppContext, name: str, csv_file: Path) -> dict[str, Any]:
    """Import a CSV (header with 'symbol'; optional sec_type, exchange, currency): every row or none."""
    return app.call(DATA, "universe_import", name, csv_file.read_text())


@universe.command("remove")
@click.argument("name")
@click.argument("symbols", nargs=-1, required=True)
@click.pass_obj
@output()
def universe_remove(app: AppContext, name: str, symbols: tuple[str, ...]) -> dict[str, Any]:
    """Remove symbols from a universe."""
    return app.call(DATA, "universe_remove", name, list(symbols))


@universe.command("delete")
@click.argument("name")
@click.pass_obj
@output()
def universe_delete(app: AppContext, name: str) -> dict[str, Any]:
    """Delete a universe."""
    return app.call(DATA, "universe_delete", name)
