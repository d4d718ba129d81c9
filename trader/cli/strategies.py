"""Strategies: files (``inspect``), what is deployed (``deploy``, ``deployed``, ``undeploy``) and the live runtime
(``strategies`` / ``list``, ``enable``, ``disable``, ``reload``, ``signals``, ``pnl``, ``fills``).

Deploying appends to the user's strategy_runtime.yaml — a stored backtest run (only a run whose latest
`backtests validate` passed, without ``--force``) or a strategy by name with ``--module``. Every edit of that
file is locked and atomic (`trader.strategy.runtime_file`); strategy_service picks edits up at once when it is
running (``strategy_reload``), else at its next start.
"""
from __future__ import annotations

from typing import Any

import click

from trader.cli.backtest import _store, _strategies_dir, check_params
from trader.cli.core import AppContext, bound_rows, list_options, output


@click.group(invoke_without_command=True)
@click.pass_context
def strategies(ctx: click.Context) -> None:
    """Strategy files in strategies_directory, and the strategies deployed to the live runtime.

    Without a subcommand: the live strategies (as ``strategies list``)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(strategies_list)


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


def check_deploy_name(value: str | None) -> str | None:
    """A deploy name is one word: letters, digits, ``_``, ``-`` and ``.``, at most 64, no ``..`` (it becomes a
    key in strategy_runtime.yaml and may name files); a usage error otherwise."""
    import re

    if value is not None and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value) or ".." in value):
        raise click.UsageError(f"deploy name {value!r}: use 1-64 letters, digits, '_', '-' or '.', starting with "
                               "a letter or digit, without '..'")
    return value


@strategies.command("deploy")
@click.argument("run_id", required=False)
@click.option("--name", default=None, help="Name in strategy_runtime.yaml (default: <class>_<run id>; with "
              "--module the RUN_ID argument may be the name).")
@click.option("--module", default=None, help="Deploy by name: the strategy file under strategies_directory.")
@click.option("--class", "class_name", default=None, help="The Strategy class (default: the file's only one).")
@click.option("--conids", default=None, help="Comma-separated conIds to run on.")
@click.option("--universe", default=None, help="Run on every member of this universe.")
@click.option("--bar-size", default="1 min", show_default=True, help="Bar size ('5 secs', '1 min', '1 hour').")
@click.option("--mode", type=click.Choice(["auto", "vectorized", "bar-by-bar"]), default="auto", show_default=True,
              help="How live calls the strategy, as `backtest --mode` (auto: signals() when the class has it).")
@click.option("--params", "params_json", default=None, help="Parameters as a JSON object.")
@click.option("--history-days", type=int, default=0, show_default=True,
              help="Days of stored bars to warm the strategy up with.")
@click.option("--paper-only/--live-allowed", default=True, show_default=True,
              help="paper-only strategies never trade a live account.")
@click.option("--auto-execute", is_flag=True, help="Approve its proposals automatically (same risk gate).")
@click.option("--live-trading", is_flag=True, help="The second opt-in for auto-execution on a live account (with "
              "--live-allowed); also needs a passing `backtests validate` of this exact source, or --force.")
@click.option("--max-position", type=float, default=0.0, help="Shares per conId it may hold (0 = no cap).")
@click.option("--max-orders-per-day", type=int, default=10, show_default=True)
@click.option("--cooldown", type=float, default=0.0, help="Seconds between two orders on one conId.")
@click.option("--force", is_flag=True, help="Deploy even when the run (or, with --live-trading, this source) has "
              "no passing validation (recorded as forced: true; audited when it runs on a live account).")
@click.pass_obj
@output()
def strategies_deploy(app: AppContext, run_id: str | None, name: str | None, module: str | None,
                      class_name: str | None, conids: str | None, universe: str | None, bar_size: str,
                      params_json: str | None, history_days: int, paper_only: bool, auto_execute: bool,
                      live_trading: bool, max_position: float, max_orders_per_day: int, cooldown: float,
                      force: bool, mode: str = "auto") -> dict[str, Any]:
    """Add a stored run (its strategy, conIds, bar size and params) or, with --module, a strategy by name to
    strategy_runtime.yaml; a running strategy_service starts it at once."""
    path = app.paths.config_dir / "strategy_runtime.yaml"
    check_deploy_name(name if name is not None else (run_id if module else None))
    if module is None:
        if run_id is None:
            raise click.UsageError("give a RUN_ID (a stored backtest run) or --module (deploy by name)")
        from trader.simulation.validate import deploy_run

        entry = deploy_run(_store(app), run_id, path, name=name, force=force, strategies_root=_strategies_dir(app))
    else:
        entry = _deploy_by_name(app, path, name or run_id, module, class_name, conids, universe, bar_size,
                                params_json, history_days, paper_only, auto_execute, live_trading, max_position,
                                max_orders_per_day, cooldown, force, mode)
    return {"deployed": entry, "file": str(path), "runtime": _tell_runtime(app, entry["name"])}


def _deploy_by_name(app: AppContext, path: Any, name: str | None, module: str, class_name: str | None,
                    conids: str | None, universe: str | None, bar_size: str, params_json: str | None,
                    history_days: int, paper_only: bool, auto_execute: bool, live_trading: bool,
                    max_position: float, max_orders_per_day: int, cooldown: float, force: bool,
                    mode: str = "auto") -> dict[str, Any]:
    import json

    from trader.strategy.bars import bar_seconds
    from trader.strategy.loader import load_strategy_class
    from trader.strategy.runtime_file import add_entry

    if not name:
        raise click.UsageError("deploying by --module needs a name: strategies deploy NAME --module FILE ...")
    if not conids and not universe:
        raise click.UsageError("give --conids or --universe")
    try:
        ids = [int(c) for c in (conids or "").split(",") if c.strip()]
        params = json.loads(params_json) if params_json else {}
        bar_seconds(bar_size)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not isinstance(params, dict):
        raise click.UsageError("--params must be a JSON object")
    cls = load_strategy_class(_strategies_dir(app), module, class_name)
    live = _live_opt_in(app, module, auto_execute and not paper_only, live_trading, force)
    params = check_params(cls, params)  # unknown names and wrong types fail here, not in the runtime
    entry: dict[str, Any] = {
        "name": name, "module": module, "class": cls.__name__, "conids": ids, "bar_size": bar_size,
        "params": params, "paper": paper_only, "paper_only": paper_only, "auto_execute": auto_execute,
        "historical_days_prior": history_days, "max_position": max_position,
        "max_orders_per_day": max_orders_per_day, "cooldown_seconds": cooldown, **live}
    if mode != "auto":
        entry["mode"] = mode
    if universe:
        entry["universe"] = universe
    return add_entry(path, entry)


def _live_opt_in(app: AppContext, module: str, live_auto: bool, live_trading: bool, force: bool) -> dict[str, Any]:
    """The entry's live-trading fields. Auto-execution that may reach a live account (--auto-execute
    --live-allowed) needs --live-trading (the second opt-in) and a stored run of this exact source whose latest
    `backtests validate` passed; --force deploys without that run (forced: true, audited by the runtime)."""
    if not live_auto:
        if live_trading:
            raise click.UsageError("--live-trading goes with --auto-execute --live-allowed")
        return {}
    if not live_trading:
        raise click.UsageError("--auto-execute with --live-allowed may trade real money: add --live-trading "
                               "(the second opt-in)")
    from trader.errors import NotValidated
    from trader.simulation.validate import validated_run_for_source
    from trader.strategy.loader import resolve_strategy_path, source_hash

    digest = source_hash(resolve_strategy_path(_strategies_dir(app), module))
    run_id = validated_run_for_source(_store(app), module, digest)
    if run_id is None and not force:
        raise NotValidated(f"no stored run of {module} at this source ({digest[:12]}) passed `backtests validate`: "
                           "backtest and validate it, or use --force (audited)")
    return {"live_trading": True, "validated_hash": digest if run_id else None, "run_id": run_id,
            "validated": run_id is not None, "forced": run_id is None}


def _tell_runtime(app: AppContext, name: str | None) -> dict[str, Any]:
    """Ask a running strategy_service to re-read the file now (it would at its next reconcile anyway)."""
    from trader.cli.core import port_open

    address = app.config.rpc_endpoints()["strategy_service"]
    if not port_open(address, 0.3):
        return {"applied": False, "reason": "strategy_service is not running: applied at its next start"}
    reply = app.call("strategy_service", "strategy_reload", name, timeout=60.0)
    row = next((r for r in reply["strategies"] if r["name"] == name), None)
    return {"applied": True, "state": row["state"] if row else "NOT_INSTALLED",
            "error": row.get("error") if row else None}


def _render_live(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("name", "state", "conids", "bar", "last bar", "last signal", "positions", "today P&L", "auto")
    for r in rows:
        sig = r.get("last_signal") or {}
        table.add_row(r["name"], r["state"], ",".join(map(str, r["conids"])), r["bar_size"], r.get("last_bar") or "",
                      f"{sig.get('action', '')} {sig.get('con_id', '')} {sig.get('bar_time', '')}".strip(),
                      str(r.get("positions") or {}), str(r.get("today_pnl", "")), "yes" if r["auto_execute"] else "no")
    console.print(table)
    for r in rows:
        if r.get("error"):
            console.print(f"[red]{r['name']} ERROR[/]\n{r['error']}")


@strategies.command("list")
@click.pass_obj
@output(_render_live)
def strategies_list(app: AppContext) -> list[dict[str, Any]]:
    """Live strategies: state, last bar, last signal, targets and positions per conId, error traceback."""
    return app.call("strategy_service", "strategies", timeout=10.0)


def _set_enabled(app: AppContext, name: str, enabled: bool) -> dict[str, Any]:
    from trader.strategy.runtime_file import set_enabled

    path = app.paths.config_dir / "strategy_runtime.yaml"
    entry = set_enabled(path, name, enabled)
    return {"strategy": name, "enabled": enabled, "entry": entry, "runtime": _tell_runtime(app, name)}


@strategies.command("enable")
@click.argument("name")
@click.pass_obj
@output()
def strategies_enable(app: AppContext, name: str) -> dict[str, Any]:
    """Let a DISABLED strategy receive bars again (persisted in strategy_runtime.yaml)."""
    return _set_enabled(app, name, True)


@strategies.command("disable")
@click.argument("name")
@click.pass_obj
@output()
def strategies_disable(app: AppContext, name: str) -> dict[str, Any]:
    """Stop a strategy receiving bars and signalling (persisted in strategy_runtime.yaml)."""
    return _set_enabled(app, name, False)


@strategies.command("undeploy")
@click.argument("name")
@click.pass_obj
@output()
def strategies_undeploy(app: AppContext, name: str) -> dict[str, Any]:
    """Remove a strategy from strategy_runtime.yaml (and from the running runtime)."""
    from trader.strategy.runtime_file import remove_entry

    path = app.paths.config_dir / "strategy_runtime.yaml"
    entry = remove_entry(path, name)
    return {"undeployed": entry, "file": str(path), "runtime": _tell_runtime(app, name)}


@strategies.command("reload")
@click.argument("name", required=False)
@click.pass_obj
@output(_render_live)
def strategies_reload(app: AppContext, name: str | None) -> list[dict[str, Any]]:
    """Re-read strategy_runtime.yaml now and re-import changed strategy files (one strategy or all)."""
    return app.call("strategy_service", "strategy_reload", name, timeout=60.0)["strategies"]


@strategies.command("signals")
@click.argument("name")
@list_options(20, "signals and decisions")
@click.pass_obj
@output()
def strategies_signals(app: AppContext, name: str, limit: int, since: Any) -> dict[str, Any]:
    """A strategy's recent signals and what became of them (proposal, order sent, refusal and why), newest first."""
    # a store read over the event log, like `fills`: not bounded by the short default RPC timeout
    out = app.call("strategy_service", "strategy_signals", name, limit, timeout=30.0)
    # newest first from the service: the rows at or after --since are a prefix of each list
    for key in ("signals", "decisions"):
        out[key] = bound_rows(out.get(key) or [], limit, since, "ts", newest_first=False)
    return out


@strategies.command("pnl")
@click.argument("name", required=False)
@click.pass_obj
@output()
def strategies_pnl(app: AppContext, name: str | None) -> dict[str, Any]:
    """Position, P&L since deployed and today's P&L per strategy (and per conId), from the fills of the orders
    each strategy caused; marked at the latest bar close."""
    return app.call("strategy_service", "strategy_pnl", name, timeout=30.0)


@strategies.command("fills")
@click.argument("name")
@list_options(50, "fills")
@click.pass_obj
@output()
def strategies_fills(app: AppContext, name: str, limit: int, since: Any) -> list[dict[str, Any]]:
    """A strategy's fills (executions of the orders its proposals sent), newest first."""
    rows = app.call("strategy_service", "strategy_fills", name, limit, timeout=30.0)
    return bound_rows(rows, limit, since, "time", newest_first=False)


@strategies.command("deployed")
@click.pass_obj
@output(_render_deployed)
def strategies_deployed(app: AppContext) -> list[dict[str, Any]]:
    """Strategies in strategy_runtime.yaml (what the live runtime loads)."""
    import msgspec

    from trader.config import StrategyRuntimeConfig, load_section

    cfg = load_section("strategy_runtime.yaml", StrategyRuntimeConfig, app.paths)
    return [msgspec.to_builtins(s) for s in cfg.strategies]


from trader.cli import strategies_research  # noqa: E402,F401  (registers strategies create / gauntlet)
