"""Backtests: ``backtest``, ``backtests [show|confidence|archive|unarchive]`` and ``strategies inspect``.

Heavy imports (pandas, numpy, scipy, matplotlib) happen inside the commands.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, output


def _render_run(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("metric", "value", title=f"backtest {data.get('id', '')} {data.get('class_name', '')}")
    for k, v in (data.get("metrics") or {}).items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    for c in data.get("confidence") or []:
        console.print(f"{c['name']}: {c['meaning']}")


def _render_runs(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("id", "class", "conids", "bar size", "score", "return", "sharpe", "max dd", "trades")
    for r in rows:
        table.add_row(r["id"], r["class_name"], ",".join(map(str, r["conids"])), r["bar_size"],
                      f"{r['score']:.2f}", f"{(r['total_return'] or 0):.1%}", f"{(r['sharpe'] or 0):.2f}",
                      f"{(r['max_drawdown'] or 0):.1%}", str(int(r["trade_count"] or 0)))
    console.print(table)


def _strategies_dir(app: AppContext) -> Path:
    """``strategies_directory``; a relative one is taken from the current directory if it exists there, else
    from the MMR checkout (so `mmr backtest` works from any directory, e.g. cron)."""
    path = Path(app.config.strategies_directory).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return Path(__file__).resolve().parents[2] / path


def _store(app: AppContext):
    from trader.data.store import state_store

    return state_store(app.paths.data_dir)


def _conids(app: AppContext, conids: str | None, universe_name: str | None) -> list[int]:
    """The conIds to test: from --conids, or a universe's members (each must have a resolved conId)."""
    if (conids is None) == (universe_name is None):
        raise click.UsageError("give exactly one of --conids or --universe")
    if conids is not None:
        return [int(x) for x in conids.split(",") if x.strip()]
    from trader.data.universes import UniverseStore

    members = UniverseStore(_store(app)).members(universe_name)
    missing = [m.symbol for m in members if m.conid is None]
    if missing:
        raise click.UsageError(
            f"universe {universe_name!r} has members without a conId ({', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}): download their history first (mmr history ib --universe "
            f"{universe_name} …), which resolves them, or pass --conids")
    if not members:
        raise click.UsageError(f"universe {universe_name!r} is empty")
    return [int(m.conid) for m in members]


@click.command()
@click.option("-s", "--strategy", "strategy_file", required=True, help="File inside strategies_directory.")
@click.option("--class", "class_name", default=None, help="Strategy class (default: the only one in the file).")
@click.option("--conids", default=None, help="Comma-separated conIds.")
@click.option("--universe", "universe_name", default=None, help="Backtest every member of this universe instead.")
@click.option("--days", type=int, default=365, show_default=True)
@click.option("--bar-size", default="1 day", show_default=True)
@click.option("--capital", type=float, default=100_000.0, show_default=True)
@click.option("--quantity", type=float, default=None, help="Fixed shares per entry (default: all-in sizing).")
@click.option("--commission-bps", type=float, default=0.0)
@click.option("--commission-per-share", type=float, default=0.0)
@click.option("--slippage-bps", type=float, default=0.0)
@click.option("--slippage-per-share", type=float, default=0.0)
@click.option("--param", "param_pairs", multiple=True, help="K=V parameter override (repeatable).")
@click.option("--params", "params_json", default=None, help="JSON object of parameter overrides.")
@click.option("--mode", type=click.Choice(["auto", "vectorized", "bar-by-bar"]), default="auto")
@click.option("--check-lookahead", is_flag=True, help="Also prove no signal changes when later bars are removed.")
@click.option("--detail", is_flag=True, help="Include the trade list.")
@click.pass_obj
@output(_render_run)
def backtest(app: AppContext, strategy_file: str, class_name: str | None, conids: str | None,
             universe_name: str | None, days: int, bar_size: str,
             capital: float, quantity: float | None, commission_bps: float, commission_per_share: float,
             slippage_bps: float, slippage_per_share: float, param_pairs: tuple[str, ...],
             params_json: str | None, mode: str, check_lookahead: bool, detail: bool) -> dict[str, Any]:
    """Backtest a strategy (fills at the next bar's open) and persist the run."""
    from dataclasses import asdict

    from trader.simulation.backtester import Costs, params_from_cli, run_backtest
    from trader.simulation.data import load_bars
    from trader.simulation.store import save_run
    from trader.strategy.loader import load_strategy_class, resolve_strategy_path, source_hash

    root = _strategies_dir(app)
    cls = load_strategy_class(root, strategy_file, class_name)
    params = params_from_cli(list(param_pairs), params_json)
    ids = _conids(app, conids, universe_name)
    bars = {c: load_bars(c, days, bar_size, str(app.paths.data_dir)) for c in ids}
    costs = Costs(commission_bps, commission_per_share, slippage_bps, slippage_per_share)
    result = run_backtest(cls().with_params(**params), bars, capital=capital, quantity=quantity, costs=costs,
                          mode=mode)
    run_id = save_run(_store(app), result, strategy=strategy_file, class_name=cls.__name__,
                      source_hash=source_hash(resolve_strategy_path(root, strategy_file)), params=params,
                      conids=ids, bar_size=bar_size, costs=costs)
    out: dict[str, Any] = {"id": run_id, "class_name": cls.__name__, "mode": result.mode, "conids": ids,
                           "bars": int(sum(len(b) for b in bars.values())), "metrics": result.metrics}
    if check_lookahead:
        from trader.simulation.lookahead import check_lookahead as check

        out["lookahead"] = [asdict(check(lambda: cls().with_params(**params), b, mode=mode))
                            for b in bars.values()]
    if detail:
        out["trades"] = [asdict(t) for t in result.trades]
    return out


@click.group(invoke_without_command=True)
@click.option("--all", "include_archived", is_flag=True, help="Include archived runs.")
@click.pass_context
def backtests(ctx: click.Context, include_archived: bool) -> None:
    """Stored backtest runs ranked by quality score = sharpe * min(1, sqrt(trades/30)) * (1 - max drawdown)."""
    if ctx.invoked_subcommand is None:
        from trader.simulation.store import list_runs

        app: AppContext = ctx.obj
        app.emit(list_runs(_store(app), include_archived), _render_runs)


def _confidence(run: dict[str, Any]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    import numpy as np

    v = np.asarray(run["equity"]["v"], float)
    curve = np.concatenate(([run["capital"]], v))
    from trader.simulation.stats import confidence_report

    trade_rets = np.array([t["return_pct"] for t in run["trades"]], float)
    return [asdict(r) for r in confidence_report(np.diff(curve) / curve[:-1], trade_rets)]


@backtests.command("show")
@click.argument("run_id")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write equity+drawdown PNG.")
@click.pass_obj
@output(_render_run)
def backtests_show(app: AppContext, run_id: str, plot_path: str | None) -> dict[str, Any]:
    """One run in full: parameters, costs, metrics, trades and the confidence block."""
    from trader.simulation.store import get_run

    run = get_run(_store(app), run_id)
    run["confidence"] = _confidence(run)
    if plot_path:
        from trader.simulation.plot import plot_run

        run["plot"] = str(plot_run(run, plot_path))
    run.pop("equity")
    return run


@backtests.command("confidence")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_obj
@output()
def backtests_confidence(app: AppContext, run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    """Compact confidence table: one row per run, one column per test (passed flags + meanings)."""
    from trader.simulation.store import get_run

    rows = []
    for rid in run_ids:
        run = get_run(_store(app), rid)
        tests = _confidence(run)
        rows.append({"id": rid, **{t["name"]: round(t["value"], 4) for t in tests},
                     "passed": [t["name"] for t in tests if t["passed"]],
                     "meanings": [t["meaning"] for t in tests]})
    return rows


@backtests.command("archive")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_obj
@output()
def backtests_archive(app: AppContext, run_ids: tuple[str, ...]) -> dict[str, Any]:
    """Hide runs from the default `backtests` list."""
    from trader.simulation.store import set_archived

    return {"archived": set_archived(_store(app), list(run_ids), True)}


@backtests.command("unarchive")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_obj
@output()
def backtests_unarchive(app: AppContext, run_ids: tuple[str, ...]) -> dict[str, Any]:
    """Bring archived runs back into the `backtests` list."""
    from trader.simulation.store import set_archived

    return {"unarchived": set_archived(_store(app), list(run_ids), False)}


@click.group()
def strategies() -> None:
    """Strategy files in strategies_directory."""


@strategies.command("inspect")
@click.pass_obj
@output()
def strategies_inspect(app: AppContext) -> list[dict[str, Any]]:
    """Classes, dispatch mode and tunable params of every strategy file (AST scan, nothing executed)."""
    from dataclasses import asdict

    from trader.strategy.loader import inspect_strategies

    return [asdict(i) for i in inspect_strategies(_strategies_dir(app))]
