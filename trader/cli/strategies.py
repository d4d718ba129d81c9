"""Strategies: ``strategies inspect``, ``strategies deploy RUN_ID`` and ``strategies deployed``.

Deploying appends a stored backtest run to the user's strategy_runtime.yaml (paper: true). Only a run whose
latest `backtests validate` passed may be deployed without ``--force``.
"""
from __future__ import annotations

from typing import Any

import click

from trader.cli.backtest import _store, _strategies_dir
from trader.cli.core import AppContext, output


@click.group()
def strategies() -> None:
    """Strategy files in strategies_directory, and the strategies deployed to the live runtime."""


@strategies.command("inspect")
@click.pass_obj
@output()
def strategies_inspect(app: AppContext) -> list[dict[str, Any]]:
    """Classes, dispatch mode and tunable params of every strategy file (AST scan, nothing executed)."""
    from dataclasses import asdict

    from trader.strategy.loader import inspect_strategies

    return [asdict(i) for i in inspect_strategies(_strategies_dir(app))]


def _render_deployed(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("name", "module", "class", "conids", "bar size", "params", "paper", "run", "validated")
    for r in rows:
        table.add_row(r["name"], r["module"], r["class"], ",".join(map(str, r["conids"])), r["bar_size"],
                      str(r["params"]), str(r["paper"]), r.get("run_id") or "", str(r.get("validated", False)))
    console.print(table)


@strategies.command("deploy")
@click.argument("run_id")
@click.option("--name", default=None, help="Name in strategy_runtime.yaml (default: <class>_<run id>).")
@click.option("--force", is_flag=True, help="Deploy even when the run has no passing validation.")
@click.pass_obj
@output()
def strategies_deploy(app: AppContext, run_id: str, name: str | None, force: bool) -> dict[str, Any]:
    """Add a stored run (its strategy, conIds, bar size and params) to strategy_runtime.yaml as a paper strategy."""
    from trader.simulation.validate import deploy_run

    path = app.paths.config_dir / "strategy_runtime.yaml"
    entry = deploy_run(_store(app), run_id, path, name=name, force=force, strategies_root=_strategies_dir(app))
    return {"deployed": entry, "file": str(path)}


@strategies.command("deployed")
@click.pass_obj
@output(_render_deployed)
def strategies_deployed(app: AppContext) -> list[dict[str, Any]]:
    """Strategies in strategy_runtime.yaml (what the live runtime loads)."""
    import msgspec

    from trader.config import StrategyRuntimeConfig, load_section

    cfg = load_section("strategy_runtime.yaml", StrategyRuntimeConfig, app.paths)
    return [msgspec.to_builtins(s) for s in cfg.strategies]
