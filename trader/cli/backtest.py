"""Backtests: ``backtest``, ``backtests [--sweep ID] [show|confidence|archive|unarchive|walk-forward|validate]``.

``strategies …`` lives in trader/cli/strategies.py.

Heavy imports (pandas, numpy, scipy, matplotlib) happen inside the commands.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, ExitAfterOutput, bound_rows, list_options, output


def _render_run(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("metric", "value", title=f"backtest {data.get('id', '')} {data.get('class_name', '')} "
                                           f"(execution: {data.get('execution', 'unknown')})")
    for k, v in (data.get("metrics") or {}).items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    for c in data.get("confidence") or []:
        console.print(f"{c['name']}: {c['meaning']}")
    _print_warnings(data, console)


def _print_warnings(data: dict[str, Any], console: Any) -> None:
    for w in data.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/] {w}")


def _render_runs(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("id", "class", "conids", "bar size", "data", "coverage", "exec", "score", "return", "sharpe",
                  "max dd", "trades")
    for r in rows:
        cov = r.get("min_coverage")
        table.add_row(r["id"], r["class_name"], ",".join(map(str, r["conids"])), r["bar_size"],
                      str(r.get("provenance", "unknown")), "—" if cov is None else f"{cov:.0%}",
                      str(r.get("execution", "unknown")), f"{r['score']:.2f}", f"{(r['total_return'] or 0):.1%}",
                      f"{(r['sharpe'] or 0):.2f}",
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
    """The research store (backtest runs, walk-forwards, validations, sweeps)."""
    from trader.data.store import research_store

    return research_store(app.paths.data_dir)


def parse_conids(text: str) -> list[int]:
    """``--conids``: conIds separated by commas and/or spaces (``"265598,272093"``, ``"265598 272093"``)."""
    import re

    words = [w for w in re.split(r"[,\s]+", text) if w]
    bad = [w for w in words if not w.isdigit()]
    if bad or not words:
        raise click.UsageError(f"--conids takes conIds (whole numbers) separated by commas or spaces, got "
                               f"{text!r}")
    return [int(w) for w in words]


def _symbol_conids(app: AppContext, symbols: tuple[str, ...]) -> list[int]:
    """conIds of ``--symbol`` values: from the bar store's symbol table (what was downloaded), else resolved by
    trader_service when it is up."""
    from trader.cli.core import service_up
    from trader.data.bars import BarStore, lookup_symbol

    store = BarStore.open(app.paths.data_dir)
    out = []
    for sym in symbols:
        known = lookup_symbol(store, sym)
        if len(known) > 1:
            raise click.UsageError(f"{sym.upper()} names {len(known)} stored contracts "
                                   f"({', '.join(str(k.conid) for k in known)}): pass --conids")
        if known:
            out.append(known[0].conid)
        elif service_up(app, "trader_service"):
            out.append(int(app.call("trader_service", "resolve", sym.upper(), timeout=15.0)["con_id"]))
        else:
            raise click.UsageError(f"no stored bars for {sym.upper()} and trader_service is down to resolve it: "
                                   f"mmr history ib --symbol {sym.upper()} … downloads (and resolves) it")
    return out


def _conids(app: AppContext, conids: str | None, universe_name: str | None,
            symbols: tuple[str, ...] = ()) -> list[int]:
    """The conIds to test: from --conids, --symbol, or a universe's members (each must have a resolved conId)."""
    if sum((conids is not None, universe_name is not None, bool(symbols))) != 1:
        raise click.UsageError("give exactly one of --conids, --symbol or --universe")
    if conids is not None:
        return parse_conids(conids)
    if symbols:
        return _symbol_conids(app, symbols)
    from trader.data.store import state_store
    from trader.data.universes import UniverseStore

    members = UniverseStore(state_store(app.paths.data_dir)).members(universe_name)
    missing = [m.symbol for m in members if m.conid is None]
    if missing:
        raise click.UsageError(
            f"universe {universe_name!r} has members without a conId ({', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}): download their history first (mmr history ib --universe "
            f"{universe_name} …), which resolves them, or pass --conids")
    if not members:
        raise click.UsageError(f"universe {universe_name!r} is empty")
    return [int(m.conid) for m in members]


def _coerce(value: Any, default: Any) -> Any:
    """``value`` (a CLI string or a JSON value) as the type of the parameter's declared ``default``."""
    import math

    if isinstance(default, bool):
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if isinstance(default, int):
        if isinstance(value, float) or not str(value).strip().lstrip("+-").isdigit():
            raise ValueError(value)
        return int(value)
    if isinstance(default, float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    return value if default is None or not isinstance(default, str) else str(value)


def check_params(cls: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked against the strategy's declared UPPER_CASE params and converted to their types;
    BacktestError naming every unknown name, every value of the wrong type and, when those are right, what the
    strategy's ``param_problems`` finds in the whole set."""
    from trader.errors import BacktestError

    known = cls.params()
    out, problems = {}, []
    for key, value in params.items():
        if key not in known:
            hint = f" (did you mean {key.upper()}?)" if key.upper() in known else ""
            problems.append(f"unknown parameter {key!r}{hint}")
            continue
        try:
            out[key] = _coerce(value, known[key])
        except (TypeError, ValueError, OverflowError):
            problems.append(f"{key} must be {type(known[key]).__name__} like its default {known[key]!r}, "
                            f"got {value!r}")
    if not problems:  # names and types right: do the values make sense together (FAST < SLOW)?
        problems = list(cls.param_problems({**known, **out}))
    if problems:
        declared = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
        raise BacktestError(f"{cls.__name__}: {'; '.join(problems)} (declared parameters: {declared})")
    return out


def costs_options(fn: Callable) -> Callable:
    """The four trading-cost options shared by ``backtest``, ``backtests walk-forward`` and ``bt-sweep``."""
    for opt in reversed([
        click.option("--commission-bps", type=float, default=0.0, help="Commission, basis points of notional."),
        click.option("--commission-per-share", type=float, default=0.0, help="Commission, USD per share."),
        click.option("--slippage-bps", type=float, default=0.0, help="Slippage, basis points of price."),
        click.option("--slippage-per-share", type=float, default=0.0, help="Slippage, USD per share."),
        click.option("--spread-bps", "spread_bps", type=float, default=0.0,
                     help="Quoted bid-ask spread in bps; each fill pays half of it."),
        click.option("--impact-coefficient", "impact_coefficient", type=float, default=0.0,
                     help="Square-root market impact: coefficient × σ × sqrt(shares / mean volume), 0 = off."),
        click.option("--impact-window", "impact_window", type=int, default=20, show_default=True,
                     help="Bars before each fill that σ and the mean volume are measured over."),
    ]):
        fn = opt(fn)
    return fn


def slippage_models(spread_bps: float = 0.0, impact_coefficient: float = 0.0, impact_window: int = 20
                    ) -> dict[str, Any]:
    """The spread and square-root impact settings of `costs_options` as `Costs` keyword arguments."""
    return {"spread_bps": spread_bps, "impact_coefficient": impact_coefficient, "impact_window": impact_window}


@click.command()
@click.option("-s", "--strategy", "strategy_file", required=True, help="File inside strategies_directory.")
@click.option("--class", "class_name", default=None, help="Strategy class (default: the only one in the file).")
@click.option("--conids", default=None, help="conIds, separated by commas or spaces.")
@click.option("--symbol", "symbols", multiple=True,
              help="Symbol to test (repeatable): its conId from the stored bars, else resolved by trader_service.")
@click.option("--universe", "universe_name", default=None, help="Backtest every member of this universe instead.")
@click.option("--days", type=int, default=365, show_default=True)
@click.option("--bar-size", default="1 day", show_default=True)
@click.option("--capital", type=float, default=100_000.0, show_default=True)
@click.option("--quantity", type=float, default=None, help="Fixed shares per entry (default: all-in sizing).")
@costs_options
@click.option("--param", "param_pairs", multiple=True, help="K=V parameter override (repeatable).")
@click.option("--params", "params_json", default=None, help="JSON object of parameter overrides.")
@click.option("--mode", type=click.Choice(["auto", "vectorized", "bar-by-bar"]), default="auto")
@click.option("--check-lookahead", is_flag=True, help="Also prove no signal changes when later bars are removed.")
@click.option("--detail", is_flag=True, help="Include the trade list.")
@click.option("--execution", type=click.Choice(["backtest", "live"]), default="backtest", show_default=True,
              help="live: size entries as the live runtime does (position_sizing.yaml), not all-in.")
@click.option("--max-position", type=float, default=0.0,
              help="With --execution live: refuse entries above this many shares, as the runtime's guard does.")
@click.pass_obj
@output(_render_run)
def backtest(app: AppContext, strategy_file: str, class_name: str | None, conids: str | None,
             symbols: tuple[str, ...],
             universe_name: str | None, days: int, bar_size: str,
             capital: float, quantity: float | None, commission_bps: float, commission_per_share: float,
             slippage_bps: float, slippage_per_share: float, param_pairs: tuple[str, ...],
             params_json: str | None, mode: str, check_lookahead: bool, detail: bool, execution: str,
             max_position: float, **slippage: Any) -> dict[str, Any]:
    """Backtest a strategy (fills at the next bar's open) and persist the run."""
    from dataclasses import asdict

    from trader.simulation.backtester import Costs, params_from_cli, run_backtest
    from trader.simulation.coverage import data_report
    from trader.simulation.data import load_bars, source_report
    from trader.simulation.metrics import annualization
    from trader.simulation.store import save_run
    from trader.strategy.loader import load_strategy_class, resolve_strategy_path, source_hash

    root = _strategies_dir(app)
    cls = load_strategy_class(root, strategy_file, class_name)
    params = check_params(cls, params_from_cli(list(param_pairs), params_json))
    ids = _conids(app, conids, universe_name, symbols)
    bars = {c: load_bars(c, days, bar_size, str(app.paths.data_dir)) for c in ids}
    costs = Costs(commission_bps, commission_per_share, slippage_bps, slippage_per_share,
                  **slippage_models(**slippage))
    factory = None
    if execution == "live":
        from trader.config import PositionSizingConfig, load_section
        from trader.simulation.live_sizing import live_sizer_factory

        factory = live_sizer_factory(load_section("position_sizing.yaml", PositionSizingConfig, app.paths),
                                     max_position=max_position)
    result = run_backtest(cls().with_params(**params), bars, capital=capital, quantity=quantity, costs=costs,
                          mode=mode, sizer_factory=factory)
    report = data_report(bars, bar_size)
    run_id = save_run(_store(app), result, strategy=strategy_file, class_name=cls.__name__,
                      source_hash=source_hash(resolve_strategy_path(root, strategy_file)), params=params,
                      conids=ids, bar_size=bar_size, costs=costs, data=report, execution=execution)
    sources, warnings = source_report(bars, bar_size)
    out: dict[str, Any] = {"id": run_id, "class_name": cls.__name__, "mode": result.mode, "conids": ids,
                           "bars": int(sum(len(b) for b in bars.values())), "data": sources,
                           "provenance": report["provenance"], "coverage": report["coverage"],
                           "annualization": annualization(result.equity.index)[1], "execution": execution,
                           "warnings": warnings, "metrics": result.metrics}
    if check_lookahead:
        from trader.simulation.backtester import is_panel
        from trader.simulation.lookahead import check_lookahead as check

        make = lambda: cls().with_params(**params)  # noqa: E731
        # a panel strategy is checked over all its conIds at once (its signals depend on every one of them)
        out["lookahead"] = [asdict(check(make, bars, mode=mode))] if is_panel(cls()) else \
            [asdict(check(make, b, mode=mode)) for b in bars.values()]
    if detail:
        out["trades"] = [asdict(t) for t in result.trades]
    return out


@click.group(invoke_without_command=True)
@click.option("--all", "include_archived", is_flag=True, help="Include archived runs.")
@click.option("--sweep", "sweep_id", default=None, help="Only the runs of this sweep.")
@list_options(10, "runs")
@click.option("--sort", type=click.Choice(["score", "newest"]), default="score", show_default=True,
              help="Best quality score first, or newest first.")
@click.pass_context
def backtests(ctx: click.Context, include_archived: bool, sweep_id: str | None, limit: int, since: Any,
              sort: str) -> None:
    """Stored backtest runs ranked by quality score = sharpe * min(1, sqrt(trades/30)) * (1 - max drawdown)."""
    if ctx.invoked_subcommand is None:
        from trader.simulation.store import list_runs

        app: AppContext = ctx.obj
        # sweep_id only when asked, so the plain listing does not depend on the sweep-aware list_runs
        extra = {"sweep_id": sweep_id} if sweep_id else {}
        whole = since is not None or sort == "newest"  # the filter or the order needs every run, not the top N
        rows = list_runs(_store(app), include_archived, limit=10_000 if whole else limit, **extra)
        app.emit(bound_rows(rows, limit, since, "created_at", newest_first=sort == "newest"), _render_runs)


def _confidence(run: dict[str, Any]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    import numpy as np

    v = np.asarray(run["equity"]["v"], float)
    curve = np.concatenate(([run["capital"]], v))
    from trader.simulation.stats import confidence_report

    trade_rets = np.array([t["return_pct"] for t in run["trades"]], float)
    ppy = (run.get("metrics") or {}).get("periods_per_year") or 252.0  # the run's own annualisation
    return [asdict(r) for r in confidence_report(np.diff(curve) / curve[:-1], trade_rets, periods_per_year=ppy)]


@backtests.command("show")
@click.argument("run_id")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write equity+drawdown PNG.")
@click.pass_obj
@output(_render_run)
def backtests_show(app: AppContext, run_id: str, plot_path: str | None) -> dict[str, Any]:
    """One run in full: parameters, costs, metrics, trades and the confidence block."""
    from trader.simulation.coverage import run_warnings
    from trader.simulation.store import get_run

    run = get_run(_store(app), run_id)
    run["confidence"] = _confidence(run)
    run["warnings"] = run_warnings(run)
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


def _render_walkforward(data: dict[str, Any], console: Any) -> None:
    from rich import box
    from rich.table import Table

    from trader.simulation.digest import format_params

    table = Table(title=f"walk-forward {data['id']} {data['class_name']}", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 1, 0, 0))
    for col in ("#", "train from", "test from"):  # each test window ends where the next begins (JSON: test_end)
        table.add_column(col, no_wrap=True)
    table.add_column("best params", overflow="fold", min_width=16)
    for col in ("IS SR", "OOS SR", "OOS ret", "trades"):
        table.add_column(col, no_wrap=True, justify="right")
    for w in data["windows"]:
        table.add_row(str(w["index"]), w["train_start"][:10], w["test_start"][:10],
                      format_params(w["best_params"]),
                      f"{w['is_metrics'].get('sharpe') or 0:.2f}", f"{w['oos_metrics'].get('sharpe') or 0:.2f}",
                      f"{w['oos_metrics'].get('total_return') or 0:.1%}",
                      str(int(w["oos_metrics"].get("trade_count") or 0)))
    console.print(table)
    s = data["summary"]
    eff = "n/a" if s["efficiency"] is None else f"{s['efficiency']:.2f}"
    console.print(f"IS mean Sharpe {s['is_mean_sharpe']:.2f}  OOS mean Sharpe {s['oos_mean_sharpe']:.2f}  "
                  f"efficiency {eff}  stitched OOS return {s['oos_total_return']:.1%}, Sharpe {s['oos_sharpe']:.2f}, "
                  f"max drawdown {s['oos_max_drawdown']:.1%}")
    pbo = data.get("pbo")
    console.print(f"PBO: {pbo['meaning']}" if pbo else "PBO: n/a (needs at least 2 grid combinations)")
    _print_warnings(data, console)


@backtests.command("walk-forward")
@click.option("-s", "--strategy", "strategy_file", required=True, help="File inside strategies_directory.")
@click.option("--class", "class_name", default=None, help="Strategy class (default: the only one in the file).")
@click.option("--conids", default=None, help="conIds, separated by commas or spaces.")
@click.option("--universe", "universe_name", default=None, help="Every member of this universe instead.")
@click.option("--days", type=int, default=730, show_default=True, help="Bars of the last N days.")
@click.option("--bar-size", default="1 day", show_default=True)
@click.option("--grid", "grid_json", default="{}", show_default=True,
              help='JSON object param -> list of values, e.g. \'{"FAST":[5,10],"SLOW":[30,50]}\'.')
@click.option("--train-days", type=float, required=True, help="In-sample (optimisation) window length.")
@click.option("--test-days", type=float, required=True, help="Out-of-sample window length.")
@click.option("--step-days", type=float, default=None, help="Distance between windows (default: --test-days).")
@click.option("--anchored", is_flag=True, help="Every in-sample window starts at the first bar.")
@click.option("--objective", default="sharpe", show_default=True, help="In-sample metric to maximise.")
@click.option("--blocks", type=int, default=16, show_default=True, help="CSCV blocks for PBO (even).")
@click.option("--capital", type=float, default=100_000.0, show_default=True)
@click.option("--quantity", type=float, default=None, help="Fixed shares per entry (default: all-in sizing).")
@costs_options
@click.option("--mode", type=click.Choice(["auto", "vectorized", "bar-by-bar"]), default="auto")
@click.pass_obj
@output(_render_walkforward)
def backtests_walk_forward(app: AppContext, strategy_file: str, class_name: str | None, conids: str | None,
                           universe_name: str | None, days: int, bar_size: str, grid_json: str, train_days: float,
                           test_days: float, step_days: float | None, anchored: bool, objective: str, blocks: int,
                           capital: float, quantity: float | None, commission_bps: float,
                           commission_per_share: float, slippage_bps: float, slippage_per_share: float,
                           mode: str, **slippage: Any) -> dict[str, Any]:
    """Rolling in-sample optimisation / out-of-sample test windows, IS vs OOS summary and PBO; persisted."""
    import json
    from dataclasses import asdict

    from trader.simulation.backtester import Costs
    from trader.simulation.data import load_bars, source_report
    from trader.simulation.walkforward import save_walkforward, walk_forward
    from trader.strategy.loader import load_strategy_class

    try:
        grid = json.loads(grid_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--grid") from None
    if not isinstance(grid, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--grid")
    cls = load_strategy_class(_strategies_dir(app), strategy_file, class_name)
    ids = _conids(app, conids, universe_name)
    bars = {c: load_bars(c, days, bar_size, str(app.paths.data_dir)) for c in ids}
    result = walk_forward(cls, bars, grid, train_days=train_days, test_days=test_days, step=step_days,
                          anchored=anchored, objective=objective, pbo_blocks=blocks, capital=capital,
                          quantity=quantity, mode=mode,
                          costs=Costs(commission_bps, commission_per_share, slippage_bps, slippage_per_share,
                                      **slippage_models(**slippage)))
    from trader.simulation.coverage import data_report

    report = data_report(bars, bar_size)
    wf_id = save_walkforward(_store(app), result, strategy=strategy_file, class_name=cls.__name__, conids=ids,
                             bar_size=bar_size, grid=grid, data=report)
    sources, warnings = source_report(bars, bar_size)
    return {"id": wf_id, "class_name": cls.__name__, "conids": ids, "grid": grid, "data": sources,
            "provenance": report["provenance"], "coverage": report["coverage"], "warnings": warnings,
            "windows": [asdict(w) for w in result.windows], "summary": result.summary,
            "pbo": asdict(result.pbo) if result.pbo else None}


def _render_validation(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    verdict = "[bold green]VALIDATED[/]" if data["passed"] else "[bold red]NOT VALIDATED[/]"
    table = Table("check", "rule", "value", "passed", "note",
                  title=f"run {data['run_id']} (execution: {data.get('execution', 'unknown')}): {verdict}")
    for c in data["checks"]:
        v = c["value"]
        table.add_row(c["check"], c["rule"], "—" if v is None else f"{v:.4g}", "✔" if c["passed"] else "✘",
                      c.get("note") or "")
    console.print(table)
    if data.get("walkforward_id"):
        console.print(f"out-of-sample from walk-forward {data['walkforward_id']}")


@backtests.command("validate")
@click.argument("run_id")
@click.option("--walk-forward-id", "walkforward_id", default=None,
              help="Take the out-of-sample result from this walk-forward (default: walk-forward the run's params).")
@click.pass_obj
def backtests_validate(app: AppContext, run_id: str, walkforward_id: str | None) -> None:
    """Promotion checklist (promotion.yaml) for a stored run; the verdict is stored.
    Prints the document either way; exit code 0 when every check passes, 1 when any fails."""
    from trader.config import PromotionConfig, load_section
    from trader.simulation.validate import validate_run

    criteria = load_section("promotion.yaml", PromotionConfig, app.paths)
    doc = validate_run(_store(app), run_id, criteria, walkforward_id=walkforward_id,
                       strategies_root=_strategies_dir(app), data_dir=app.paths.data_dir)
    app.emit(doc, _render_validation)
    if not doc["passed"]:
        raise ExitAfterOutput(1)


from trader.cli import backtest_more  # noqa: E402,F401  (registers backtests compare / delete)
