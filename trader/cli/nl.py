"""``nl TEXT``: a plain-words order → the intent (offline), its exact contracts and the risk gate's what-if preview
(services up), and — only with ``--propose`` — a proposal. ``nl eval FILE.jsonl``: the parser's accuracy on a
labelled set.

Never an order: the preview is trader_service's ``propose_preview`` (propose's own checks, nothing stored) and
``--propose`` its ``propose`` RPC under a request id — a vertical through the combo API as ONE combo (BAG)
proposal. Intent → call arguments live in :mod:`trader.nl.orders`.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import EXIT_ERROR, AppContext, ExitAfterOutput, output

_RESOLVE_TIMEOUT = 10.0
_PROPOSE_TIMEOUT = 30.0
_PARSER_OPTION = click.option(
    "--parser", "parser_mode", type=click.Choice(["grammar", "llm", "both"]), default=None,
    help="grammar (offline), llm (Anthropic Messages API; needs ANTHROPIC_API_KEY) or both (must agree, else "
         "refused); default: nl_parser in trader.yaml (grammar).")


def _parser(app: AppContext, mode: str | None, seen: dict[str, Any] | None = None) -> tuple[str, Any]:
    """The chosen mode and its ``(text, ref) -> intent`` function (LLMParserError when the LLM has no key)."""
    from trader.nl.llm import make_parser

    cfg = app.config
    mode = mode or cfg.nl_parser
    return mode, make_parser(mode, api_key=cfg.anthropic_api_key, model=cfg.anthropic_model,
                             base_url=cfg.anthropic_base_url, seen=seen)


class _NLGroup(click.Group):
    """``mmr nl TEXT …`` runs ``nl parse TEXT …``; ``mmr nl eval FILE`` the harness."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["parse", *args]
        return super().parse_args(ctx, args)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name) or (self.commands["parse"] if not name.startswith("-") else None)


def _render_parse(r: dict[str, Any], console: Any) -> None:
    intent = r["intent"]
    if intent.get("refuse"):
        console.print(f"refused: {intent['reason']}", style="red")
        return
    legs = " ".join(f"{leg['action']} {leg['strike']:g}{leg['right']}" for leg in intent["legs"])
    price = f"{intent['order_type']} {intent['limit_price']:g}" if intent["limit_price"] else intent["order_type"]
    parts = (intent["action"], intent["quantity"], intent["symbol"], intent["sec_type"], intent["structure"], legs,
             intent["expiry"], price, intent["tif"])
    console.print(" ".join(str(x) for x in parts if x))
    for c in r.get("contracts") or []:
        console.print(f"  {c.get('local_symbol') or c.get('symbol')}  conId {c.get('con_id')}")
    if r.get("resolution_error"):
        console.print(f"  not resolved: {r['resolution_error']}", style="yellow")
    pv = r.get("preview")
    if pv and pv.get("refused"):
        console.print(f"  preview: would be refused: {pv['refused']}", style="red")
    elif pv:
        gate = pv.get("gate") or {}
        verdict = "allowed" if gate.get("allowed") else "refused now" if gate else "no gate answer"
        console.print(f"  risk gate: {verdict}; price {pv.get('price')}, notional {pv.get('notional')}")
        for w in pv.get("warnings") or []:
            console.print(f"    {w}", style="yellow")
    if r.get("proposal"):
        console.print(f"proposal {r['proposal'].get('id')} {r['proposal'].get('state')}")


@click.group(cls=_NLGroup)
def nl() -> None:
    """Orders in plain words: `mmr nl "sell 3 ES put spreads at 5300/5200 for 20 points friday"`."""


@nl.command("parse")
@click.argument("text", nargs=-1, required=True)
@click.option("--ref-date", default=None, metavar="YYYY-MM-DD", help="Dates relative to this day (default today).")
@click.option("--offline", is_flag=True, help="Parse only: no contracts, no risk preview (no service needed).")
@click.option("--propose", "do_propose", is_flag=True,
              help="Create a PENDING proposal from the intent (never an order; a vertical is one combo proposal).")
@click.option("--request-id", default=None, metavar="ID", help="Your id for the proposal (default: from the text).")
@_PARSER_OPTION
@click.pass_obj
@output(_render_parse)
def parse_cmd(app: AppContext, text: tuple[str, ...], ref_date: str | None, offline: bool, do_propose: bool,
              request_id: str | None, parser_mode: str | None) -> dict[str, Any]:
    """Parse TEXT into an order intent; with trader_service up, show the exact contracts and the risk gate's
    what-if preview (propose's own checks, nothing stored); --propose creates a PENDING proposal instead.
    Exit 1 when the text is refused with --propose or a contract cannot be resolved."""
    import time
    from datetime import date

    from trader.nl.orders import request_id_for

    start = time.perf_counter()
    try:
        ref = date.fromisoformat(ref_date) if ref_date else date.today()
    except ValueError as exc:
        raise click.BadParameter(f"--ref-date {ref_date!r}: {exc}") from exc
    words = " ".join(text)
    seen: dict[str, Any] = {}
    mode, parse = _parser(app, parser_mode, seen)
    intent = parse(words, ref)
    out: dict[str, Any] = {"text": words, "ref_date": ref.isoformat(), "parser": mode, "intent": intent}
    if seen:  # both: each parser's own answer, so a disagreement can be read
        out["parsers"] = seen
    if intent.get("refuse"):
        if do_propose:
            app.emit(out, _render_parse)
            raise ExitAfterOutput(EXIT_ERROR)
        return out
    if offline and not do_propose:
        return out
    failed = _resolve_and_preview(app, intent, words, out, do_propose)
    if do_propose:
        out["proposal"] = _propose(app, intent, out["contracts"], words,
                                   request_id or request_id_for(words, out["ref_date"]))
    out["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
    if failed:
        app.emit(out, _render_parse)
        raise ExitAfterOutput(EXIT_ERROR)
    return out


def _resolve_and_preview(app: AppContext, intent: dict[str, Any], words: str, out: dict[str, Any],
                         do_propose: bool) -> bool:
    """Fill ``out`` with the contracts and (without --propose) the risk preview; True when a contract could not
    be resolved. With --propose errors reach the caller (an error document); without it they are reported in
    ``out`` (services down is reported like --offline, not as a failure)."""
    from trader.cli.portfolio import TRADER
    from trader.errors import MMRError, ServiceUnavailable
    from trader.nl.orders import NotProposable, proposal_call, selections

    try:
        out["contracts"] = [app.call(TRADER, "resolve", s.pop("symbol"), **s,
                                     timeout=max(app.config.rpc_timeout, _RESOLVE_TIMEOUT))
                            for s in selections(intent)]
    except MMRError as exc:
        if do_propose:
            raise
        out["resolution_error"] = f"{type(exc).__name__}: {exc}"
        return not isinstance(exc, ServiceUnavailable)
    if do_propose:
        return False
    try:
        args, kwargs = proposal_call(intent, out["contracts"], words)
        p = app.call(TRADER, "propose_preview", *args, **kwargs, timeout=max(app.config.rpc_timeout,
                                                                             _PROPOSE_TIMEOUT))
        out["preview"] = {k: p.get(k) for k in ("symbol", "action", "quantity", "order_type", "limit_price", "tif",
                                                 "sec_type", "exchange", "state")} | (p.get("risk_preview") or {})
    except NotProposable as exc:
        out["preview"] = {"refused": str(exc)}
    except MMRError as exc:  # what propose would refuse now (InvalidProposal, GroupBudgetExceeded …)
        out["preview"] = {"refused": f"{type(exc).__name__}: {exc}"}
    return False


def _propose(app: AppContext, intent: dict[str, Any], contracts: list[dict[str, Any]], words: str,
             request_id: str) -> Any:
    from trader.cli.portfolio import TRADER
    from trader.nl.orders import NotProposable, proposal_call
    from trader.trading.roles import check_allowed, role_from_env

    check_allowed(role_from_env(), "propose")
    try:
        args, kwargs = proposal_call(intent, contracts, words)
    except NotProposable as exc:
        raise click.ClickException(str(exc)) from None
    if kwargs.get("legs"):  # a vertical: ONE combo (BAG) proposal through the combo API (issue 17)
        from trader.cli.combos import combo_order

        return combo_order(app, args[0], args[1], kwargs["legs"], quantity=kwargs["quantity"],
                           limit=kwargs["limit_price"], propose=True, reasoning=kwargs["reasoning"],
                           tif=kwargs["tif"], currency=kwargs["currency"], request_id=request_id)
    return app.call(TRADER, "propose", *args, **kwargs, request_id=request_id,
                    timeout=max(app.config.rpc_timeout, _PROPOSE_TIMEOUT))


@nl.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=None,
              help="Exit 1 when exact-match accuracy is below this.")
@_PARSER_OPTION
@click.pass_obj
def eval_cmd(app: AppContext, file: str, min_accuracy: float | None, parser_mode: str | None) -> None:
    """Exact-match and per-field accuracy of the parser on FILE.jsonl ({text, ref_date, expect} lines),
    every mismatch as a diff, p50/p99 latency. Needs no running service (the llm parser calls its API)."""
    from trader.nl.evaluate import evaluate, load_cases

    mode, parse = _parser(app, parser_mode)
    report = {"parser": mode, **evaluate(load_cases(file), parse)}
    report["min_accuracy"] = min_accuracy
    report["passed"] = min_accuracy is None or report["accuracy"] >= min_accuracy

    def render(r: dict[str, Any], console: Any) -> None:
        console.print(f"accuracy {r['accuracy']:.4f} ({r['matched']}/{r['cases']})  p50 {r['latency_ms']['p50']} ms"
                      f"  p99 {r['latency_ms']['p99']} ms")
        for m in r["mismatches"]:
            console.print(f"line {m['line']}: {m['text']!r} {m['diff']}", style="red")

    app.emit(report, render)
    if not report["passed"]:
        raise ExitAfterOutput(EXIT_ERROR)
