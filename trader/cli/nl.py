"""``nl TEXT``: a plain-words order → the intent (offline), its contracts and risk preview (services up), and —
only with ``--propose`` — a proposal. ``nl eval FILE.jsonl``: the parser's accuracy on a labelled set.

Never an order: ``--propose`` goes through trader_service's ``propose`` RPC under a request id; a vertical
spread is refused there until combo (BAG) orders exist, rather than proposed as separate legs.
"""

from __future__ import annotations

import hashlib
from typing import Any

import click

from trader.cli.core import EXIT_ERROR, AppContext, ExitAfterOutput, output

_RESOLVE_TIMEOUT = 10.0


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
    console.print(f"{intent['action']} {intent['quantity']} {intent['symbol']} {intent['sec_type']} "
                  f"{intent['structure']} {legs} {intent['expiry'] or ''} {price} {intent['tif']}".replace("  ", " "))
    for c in r.get("contracts") or []:
        console.print(f"  {c.get('local_symbol') or c.get('symbol')}  conId {c.get('con_id')}")
    if r.get("resolution_error"):
        console.print(f"  not resolved: {r['resolution_error']}", style="yellow")
    if r.get("proposal"):
        console.print(f"proposal {r['proposal'].get('id')} {r['proposal'].get('state')}")


def _selections(intent: dict[str, Any]) -> list[dict[str, Any]]:
    """trader_service ``resolve`` arguments: one per leg (options), or the one outright."""
    base = {"symbol": intent["symbol"], "sec_type": intent["sec_type"],
            "exchange": "SMART" if intent["sec_type"] in ("STK", "OPT") else "CME" if intent["symbol"] in
            ("ES", "MES", "NQ", "MNQ", "RTY", "M2K") else "SMART", "currency": "USD"}
    if intent["sec_type"] == "FUT":
        return [base | ({"expiry": intent["expiry"].replace("-", "")} if intent["expiry"] else {})]
    if intent["sec_type"] == "STK":
        return [base]
    return [base | {"expiry": intent["expiry"].replace("-", ""), "strike": leg["strike"], "right": leg["right"]}
            for leg in intent["legs"]]


def request_id_for(text: str, ref_date: str) -> str:
    """The same command text on the same day is the same proposal (a retry never makes a second one)."""
    return "nl-" + hashlib.sha256(f"{ref_date}|{text.strip().lower()}".encode()).hexdigest()[:24]


@click.group(cls=_NLGroup)
def nl() -> None:
    """Orders in plain words: `mmr nl "sell 3 ES put spreads at 5300/5200 for 20 points friday"`."""


@nl.command("parse")
@click.argument("text", nargs=-1, required=True)
@click.option("--ref-date", default=None, metavar="YYYY-MM-DD", help="Dates relative to this day (default today).")
@click.option("--offline", is_flag=True, help="Parse only: do not resolve contracts through trader_service.")
@click.option("--propose", "do_propose", is_flag=True,
              help="Create a proposal from the intent (never an order; verticals refused until combo orders).")
@click.option("--request-id", default=None, metavar="ID", help="Your id for the proposal (default: from the text).")
@click.pass_obj
@output(_render_parse)
def parse_cmd(app: AppContext, text: tuple[str, ...], ref_date: str | None, offline: bool, do_propose: bool,
              request_id: str | None) -> dict[str, Any]:
    """Parse TEXT into an order intent; with trader_service up, show its contracts (and propose with --propose)."""
    import time
    from datetime import date

    from trader.nl.parser import parse

    start = time.perf_counter()
    try:
        ref = date.fromisoformat(ref_date) if ref_date else date.today()
    except ValueError as exc:
        raise click.BadParameter(f"--ref-date {ref_date!r}: {exc}") from exc
    words = " ".join(text)
    intent = parse(words, ref)
    out: dict[str, Any] = {"text": words, "ref_date": ref.isoformat(), "intent": intent}
    if intent.get("refuse"):
        if do_propose:
            app.emit(out, _render_parse)
            raise ExitAfterOutput(EXIT_ERROR)
        return out
    if not offline or do_propose:
        from trader.cli.portfolio import TRADER
        from trader.errors import ServiceUnavailable

        try:
            out["contracts"] = [app.call(TRADER, "resolve", s.pop("symbol"), timeout=max(app.config.rpc_timeout,
                                                                                        _RESOLVE_TIMEOUT), **s)
                                for s in _selections(intent)]
        except ServiceUnavailable as exc:
            if do_propose:
                raise
            out["resolution_error"] = str(exc)
    if do_propose:
        out["proposal"] = _propose(app, intent, out["contracts"], request_id or request_id_for(words, out["ref_date"]))
    out["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return out


def _propose(app: AppContext, intent: dict[str, Any], contracts: list[dict[str, Any]], request_id: str) -> Any:
    from trader.cli.contracts import order_symbol
    from trader.cli.portfolio import TRADER
    from trader.trading.roles import check_allowed, role_from_env

    check_allowed(role_from_env(), "propose")
    if intent["structure"] == "vertical":
        raise click.ClickException("combo orders not supported yet: a vertical spread cannot be proposed "
                                   "(its legs are shown above; they are never proposed separately)")
    c = contracts[0]
    return app.call(TRADER, "propose", order_symbol(c), intent["action"], quantity=float(intent["quantity"]),
                    limit_price=intent["limit_price"] if intent["order_type"] == "LMT" else None,
                    stop_loss=None, sec_type=str(c["sec_type"]), exchange=str(c.get("exchange") or "SMART"),
                    currency=str(c.get("currency") or "USD"), tif=intent["tif"],
                    allow_short=intent["action"] == "SELL" and intent["sec_type"] != "STK",
                    reasoning=f"nl: {intent}", request_id=request_id,
                    timeout=max(app.config.rpc_timeout, 30.0)) if intent["order_type"] != "STP" else \
        _refuse_stop()


def _refuse_stop() -> None:
    raise click.ClickException("a stop order cannot be proposed yet: propose accepts market and limit orders")


@nl.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=None,
              help="Exit 1 when exact-match accuracy is below this.")
@click.pass_obj
def eval_cmd(app: AppContext, file: str, min_accuracy: float | None) -> None:
    """Exact-match and per-field accuracy of the parser on FILE.jsonl ({text, ref_date, expect} lines),
    every mismatch as a diff, p50/p99 latency. Needs no running service."""
    from trader.nl.evaluate import evaluate, load_cases

    report = evaluate(load_cases(file))
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
