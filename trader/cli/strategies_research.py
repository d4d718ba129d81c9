"""``strategies create`` (scaffold a strategy and its test) and ``strategies gauntlet`` (the checks before live),
attached to the ``strategies`` group of trader/cli/strategies.py. ``strategies generate`` lives in
trader/cli/generate.py."""
from __future__ import annotations

from typing import Any

import click

from trader.cli.backtest import _conids, _store, _strategies_dir
from trader.cli.core import AppContext, ExitAfterOutput
from trader.cli.strategies import strategies


@strategies.command("create")
@click.argument("name")
@click.option("--style", type=click.Choice(["bar", "vectorized", "panel"]), default="vectorized",
              show_default=True, help="bar: on_prices per bar; vectorized: signals() at once; panel: all conIds.")
@click.option("--force", is_flag=True, help="Overwrite an existing file of that name.")
@click.pass_obj
def strategies_create(app: AppContext, name: str, style: str, force: bool) -> None:
    """Scaffold strategies_directory/NAME.py and its test (tests/test_NAME.py) from a working template."""
    from trader.simulation.scaffold import scaffold

    app.emit(scaffold(_strategies_dir(app), name, style, force=force))


def _render_gauntlet(data: dict[str, Any], console: Any) -> None:
    verdict = "[bold green]PASSED[/]" if data["passed"] else "[bold red]FAILED[/]"
    console.print(f"gauntlet {data['file']}: {verdict} (ready for live: {data['ready_for_live']})")
    for s in data["stages"]:
        mark = {True: "✔", False: "✘", None: "–"}[s["ok"]]
        console.print(f"  {mark} {s['name']}: {'; '.join(s['problems']) or s['note'] or 'ok'}")


def validate_stage(app: AppContext, strategy_file: str, class_name: str | None, ids: list[int], days: int,
                   bar_size: str) -> dict[str, Any]:
    """Backtest (and walk-forward) the strategy on the conIds' bars IN THE SANDBOX, store the run, and run the
    promotion checklist on it (`sandbox_run.sandboxed_validate`): the strategy never runs in this process."""
    from trader.config import PromotionConfig, load_section
    from trader.simulation.coverage import data_report
    from trader.simulation.data import load_bars
    from trader.simulation.sandbox_run import sandboxed_validate

    bars = {c: load_bars(c, days, bar_size, str(app.paths.data_dir)) for c in ids}
    criteria = load_section("promotion.yaml", PromotionConfig, app.paths)
    return sandboxed_validate(_store(app), _strategies_dir(app), strategy_file, class_name, bars, bar_size=bar_size,
                              criteria=criteria, data=data_report(bars, bar_size), data_dir=app.paths.data_dir)


@strategies.command("gauntlet")
@click.argument("strategy_file")
@click.option("--class", "class_name", default=None, help="Strategy class (default: the only one in the file).")
@click.option("--conids", default=None, help="Also backtest these conIds' bars and validate (promotion.yaml).")
@click.option("--days", type=int, default=365, show_default=True, help="Bars of the last N days (validate).")
@click.option("--bar-size", default="1 day", show_default=True)
@click.pass_obj
def strategies_gauntlet(app: AppContext, strategy_file: str, class_name: str | None, conids: str | None,
                        days: int, bar_size: str) -> None:
    """Checks before live: import allowlist, sandboxed run (no network, no writes, no subprocess) on hostile
    markets, lookahead, and with --conids a stored backtest + validate. Exit 1 when a stage fails."""
    from trader.simulation.gauntlet import run_gauntlet

    validate = None
    if conids is not None:
        ids = _conids(app, conids, None)
        validate = {"run": lambda: validate_stage(app, strategy_file, class_name, ids, days, bar_size)}
    doc = run_gauntlet(_strategies_dir(app), strategy_file, class_name=class_name, validate=validate)
    app.emit(doc, _render_gauntlet)
    if not doc["passed"]:
        raise ExitAfterOutput(1)


from trader.cli import generate  # noqa: E402,F401  (registers strategies generate)
