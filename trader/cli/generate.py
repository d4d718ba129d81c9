"""``strategies generate``: LLM strategy hypotheses → gauntlet → backtest → walk-forward → validate; never deploys.
Attached to the ``strategies`` group of trader/cli/strategies.py. See trader/simulation/generate.py."""
from __future__ import annotations

from typing import Any

import click

from trader.cli.backtest import _store, _strategies_dir, _symbol_conids
from trader.cli.core import AppContext, output
from trader.cli.strategies import strategies


def _render_generation(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("name", "gauntlet", "run", "validated", "DSR", "passed",
                  title=f"generation {data['generation_id']} ({data['model']}): {len(data['passed'])} of "
                        f"{data['tried']} passed")
    for h in data["hypotheses"]:
        table.add_row(h["name"], "ok" if h["gauntlet"]["passed"] else ",".join(h["gauntlet"]["failed"]),
                      h.get("run_id") or "—", str(h.get("validated", "—")),
                      f"{h['dsr']:.2f}" if "dsr" in h else "—", "✔" if h["passed"] else "✘")
    console.print(table)
    console.print(data["deploy"])


@strategies.command("generate")
@click.option("--symbol", required=True, help="Symbol whose stored bars the hypotheses are tested on.")
@click.option("--timeframe", default="1 day", show_default=True, help="Bar size ('1 min', '1 hour', '1 day').")
@click.option("--conditions", default="", help='Market conditions to target, e.g. "high volatility".')
@click.option("--n", "n", type=click.IntRange(1, 20), default=5, show_default=True, help="Hypotheses to ask for.")
@click.option("--days", type=click.IntRange(1, 36500), default=365, show_default=True,
              help="Backtest on the stored bars of the last N days.")
@click.pass_obj
@output(_render_generation)
def strategies_generate(app: AppContext, symbol: str, timeframe: str, conditions: str, n: int,
                        days: int) -> dict[str, Any]:
    """Ask the LLM (Anthropic Messages API) for strategy hypotheses; each goes through the gauntlet, a backtest
    on stored bars, a walk-forward and the promotion checklist, with the Deflated Sharpe over all tried.
    Nothing is deployed: `strategies deploy RUN_ID` stays the operator's decision."""
    from trader.simulation.gauntlet import run_gauntlet
    from trader.simulation.generate import (
        PROMPT_FILE,
        GenerationError,
        GenerationRequest,
        ask_model,
        evaluate,
        new_generation_id,
        parse_hypotheses,
        render_prompt,
        store_generation,
    )

    cfg = app.config
    if not cfg.anthropic_api_key:
        raise GenerationError("no Anthropic API key: set ANTHROPIC_API_KEY (or anthropic_api_key in trader.yaml)")
    ids = _symbol_conids(app, (symbol,))
    req = GenerationRequest(symbol.upper(), timeframe, conditions, n)
    prompt, gen_id, store, root = render_prompt(req), new_generation_id(), _store(app), _strategies_dir(app)
    response = None
    try:
        response = ask_model(prompt, api_key=cfg.anthropic_api_key, model=cfg.anthropic_model,
                             base_url=cfg.anthropic_base_url)
        hypotheses, refused = parse_hypotheses(response)
    except GenerationError as exc:
        store_generation(store, gen_id, cfg.anthropic_model, req, prompt, response, {"error": str(exc)})
        raise GenerationError(f"{exc} (generation {gen_id} stored)") from None
    result = evaluate(hypotheses, gen_id=gen_id, strategies_root=root,
                      gauntlet=lambda f: run_gauntlet(root, f),
                      backtest_and_validate=lambda f: _backtest_and_validate(app, f, ids, days, timeframe))
    store_generation(store, gen_id, cfg.anthropic_model, req, prompt, response, {**result, "refused": refused})
    return {"generation_id": gen_id, "model": cfg.anthropic_model, "prompt_file": str(PROMPT_FILE),
            "symbol": req.symbol, "conids": ids, "timeframe": timeframe, "refused": refused, **result,
            "deploy": "nothing was deployed: `mmr --json strategies deploy RUN_ID` deploys a validated run"}


def _backtest_and_validate(app: AppContext, strategy_file: str, ids: list[int], days: int, bar_size: str
                           ) -> tuple[str, dict[str, Any], list[float]]:
    import numpy as np

    from trader.cli.strategies_research import validate_stage
    from trader.simulation.store import get_run

    verdict = validate_stage(app, strategy_file, None, ids, days, bar_size)  # runs the strategy in the sandbox
    if verdict.get("run_id") is None:  # it failed there: the row says why, nothing was stored
        from trader.errors import BacktestError

        raise BacktestError(f"sandboxed backtest failed: {'; '.join(verdict['failed'])}")
    run = get_run(_store(app), verdict["run_id"])
    curve = np.concatenate(([run["capital"]], np.asarray(run["equity"]["v"], float)))
    return verdict["run_id"], verdict, (np.diff(curve) / curve[:-1]).tolist()
