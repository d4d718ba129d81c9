"""Option spreads as ONE order (issue 17): ``options vertical`` and ``options combo``, and the combo API other
commands call (``mmr nl`` turns a vertical intent into a proposal with :func:`vertical_order`).

The legs are resolved to one contract each (trader_service's ``resolve``), written for buying the combo
(:mod:`trader.trading.combos`), and sent as one ``BAG`` order with a net limit price — placed through
``place_order`` (the exactly-once path and the risk gate, which sizes the spread by its defined max loss) or, with
``propose``, stored as a proposal whose approval goes through the same path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import click

from trader.cli.core import AppContext, output

_LEG_RE = re.compile(r"^\s*(BUY|SELL)\s+(?:(\d+)\s+)?(\d+(?:\.\d+)?)\s*([CP])(?:\s+(\d{4}-?\d{2}-?\d{2}))?\s*$",
                     re.IGNORECASE)
_OPTION_SEC_TYPE = {"STK": "OPT", "IND": "OPT", "FUT": "FOP"}


def parse_leg(text: str) -> tuple[str, int, float, str, str]:
    """``"BUY 250C"`` / ``"SELL 2 260P 20261218"`` → (action, ratio, strike, right, expiry or ""): a leg may name
    its own expiry (calendars, diagonals); ``click.BadParameter`` otherwise."""
    m = _LEG_RE.match(text or "")
    if not m:
        raise click.BadParameter(f"a leg is 'BUY|SELL [RATIO] STRIKE C|P [EXPIRY]' (e.g. 'SELL 2 260C' or "
                                 f"'BUY 250C 20261218'), got {text!r}")
    return (m.group(1).upper(), int(m.group(2) or 1), float(m.group(3)), m.group(4).upper(),
            _expiry(m.group(5)) if m.group(5) else "")


def parse_strikes(text: str) -> tuple[float, float]:
    """``"5300/5200"`` → (5300.0, 5200.0); ``click.BadParameter`` otherwise."""
    parts = [p.strip() for p in str(text or "").split("/")]
    try:
        a, b = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"--strikes is two strikes A/B (e.g. 5300/5200), got {text!r}") from None
    if a <= 0 or b <= 0 or a == b:
        raise click.BadParameter(f"--strikes needs two different positive strikes, got {text!r}")
    return a, b


def _resolve_option(app: AppContext, symbol: str, expiry: str, strike: float, right: str, *,
                    sec_type: str, exchange: str, currency: str) -> dict[str, Any]:
    from trader.cli.contracts import resolve_selected

    opt_type = _OPTION_SEC_TYPE.get(sec_type.upper())
    if opt_type is None:
        raise click.UsageError(f"options are listed on STK, IND or FUT underlyings, not {sec_type!r}")
    selection = {"expiry": expiry, "strike": strike, "right": right, "multiplier": None, "trading_class": None,
                 "con_id": None}
    return resolve_selected(app, symbol, opt_type, "SMART" if opt_type == "OPT" else exchange, currency, selection)


def combo_order(app: AppContext, symbol: str, action: str, legs: Sequence[Any], *, quantity: float | None,
                limit: float,
                propose: bool = False, reasoning: str = "", tif: str = "DAY", currency: str = "USD",
                request_id: str | None = None, group: str | None = None, preview: bool = False) -> dict[str, Any]:
    """Place (or, with ``propose``, propose; with ``preview``, only preview) ONE combo order: ``legs`` are
    ``ComboLeg`` values written for buying the combo, ``action`` BUY pays the net ``limit`` per combo unit, SELL
    receives it; ``quantity`` None (a proposal or preview) is sized by the position sizer on the spread's max
    loss per unit. Returns the placement result (``place_order``, with ``combo_quote``: each leg's bid/ask/mid
    and the natural/mid net price), the stored proposal (``propose``) or what propose would store
    (``propose_preview``: state PREVIEW, nothing stored) — both with ``risk_preview.combo_quote`` and
    ``risk_preview.margin_what_if`` (the broker's whatIf of the BAG). Raises what those RPCs raise
    (RiskRejected, InvalidOrder, InvalidProposal …)."""
    from trader.cli.portfolio import TRADER
    from trader.trading.combos import coerce_legs
    from trader.trading.models import Action, OrderSource, OrderType
    from trader.trading.orders import OrderRequest

    legs = coerce_legs(legs)
    act = Action(str(action).upper())
    if quantity is None and not (propose or preview):
        raise click.UsageError("give -q N (only a proposal or a preview is sized automatically)")
    if propose or preview:
        from trader.cli.proposals import PROPOSE_TIMEOUT

        if preview:  # nothing stored: no request id to remember
            request_id = None
        return app.call(TRADER, "propose_preview" if preview else "propose", symbol.upper(), act.value, quantity=quantity, limit_price=limit,
                        reasoning=reasoning, sec_type="BAG", currency=currency, tif=tif.upper(), group=group,
                        legs=[leg.to_dict() for leg in legs], timeout=max(app.config.rpc_timeout, PROPOSE_TIMEOUT),
                        **({"request_id": request_id} if request_id is not None else {}))
    from trader.cli.trading import _order_timeout

    req = OrderRequest(symbol=symbol.upper(), action=act, quantity=quantity, order_type=OrderType.LIMIT,
                       limit_price=limit, sec_type="BAG", exchange="SMART", currency=currency, tif=tif.upper(),
                       legs=legs, group=group, source=OrderSource.CLI,
                       multiplier=legs[0].multiplier if legs else 1.0)
    return app.order_call(TRADER, "place_order", req, request_id=request_id, timeout=_order_timeout(app))


def vertical_order(app: AppContext, symbol: str, *, expiry: str, right: str, strikes: tuple[float, float],
                   action: str, quantity: float | None, limit: float, propose: bool = False, reasoning: str = "",
                   tif: str = "DAY", sec_type: str = "STK", exchange: str = "SMART", currency: str = "USD",
                   request_id: str | None = None, group: str | None = None, preview: bool = False) -> dict[str, Any]:
    """The combo API for a vertical spread: resolve the two options of ``symbol`` expiring ``expiry`` (YYYYMMDD)
    with ``right`` C|P at ``strikes`` (either order), and place — or with ``propose`` propose — it as ONE BAG order:
    ``action`` BUY = the debit vertical (pay at most ``limit``), SELL = the credit vertical (receive at least
    ``limit``). Sized and gated by its defined max loss. See :func:`combo_order` for the result."""
    from trader.trading.combos import vertical

    right = str(right).upper()[:1]
    a, b = (_resolve_option(app, symbol, expiry, k, right, sec_type=sec_type, exchange=exchange, currency=currency)
            for k in strikes)
    try:
        legs = vertical(a, b)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return combo_order(app, symbol, action, legs, quantity=quantity, limit=limit, propose=propose,
                       reasoning=reasoning, tif=tif, currency=currency, request_id=request_id, group=group,
                       preview=preview)


def _price(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def render_quote(q: dict[str, Any] | None, what_if: dict[str, Any] | None, limit: Any, action: Any,
                  console: Any) -> None:
    """The legs' bid/ask/mid and the combo's natural/mid net price next to its net limit, and the broker's
    margin what-if."""
    from rich.table import Table

    if q:
        t = Table("leg (as traded)", "expiry", "bid", "ask", "mid")
        for leg in q.get("legs") or []:
            name = leg.get("local_symbol") or f"{leg.get('strike'):g}{leg.get('right')}"
            t.add_row(f"{leg.get('action')} {leg.get('ratio')} {name}", str(leg.get("expiry") or ""),
                      _price(leg.get("bid")), _price(leg.get("ask")), _price(leg.get("mid")))
        console.print(t)
        side = "pays at most" if str(action).upper() == "BUY" else "receives at least"
        console.print(f"net per combo: natural {_price(q.get('natural'))}, mid {_price(q.get('mid'))}; "
                      f"limit {_price(limit)} ({action} {side})")
    if what_if:
        if what_if.get("error"):
            console.print(f"broker what-if unavailable: {what_if['error']}", style="dim")
        else:
            console.print(f"broker what-if: initial margin {_price(what_if.get('init_margin_change'))}, "
                          f"maintenance {_price(what_if.get('maint_margin_change'))}, "
                          f"commission {_price(what_if.get('commission'))}")


def _render(r: dict[str, Any], console: Any) -> None:
    if "state" in r:  # a proposal or a preview
        legs = " / ".join(f"{leg['action']} {leg['ratio']} {leg['local_symbol'] or leg['strike']}"
                          for leg in r.get("legs") or [])
        console.print(f"proposal {r.get('id')}: {r.get('action')} {r.get('quantity')} {r.get('symbol')} combo "
                      f"[{legs}] at {r.get('limit_price')} ({r.get('state')})")
        pv = r.get("risk_preview") or {}
        render_quote(pv.get("combo_quote"), pv.get("margin_what_if"), r.get("limit_price"), r.get("action"),
                      console)
        for w in pv.get("warnings") or []:
            console.print(f"warning: {w}", style="yellow")
        return
    from trader.cli.trading import _render_placed

    render_quote(r.get("combo_quote"), None, None, r.get("action"), console)
    _render_placed(r, console)


def _combo_options(fn, *, expiry_required: bool = True):
    opts = [
        click.option("--request-id", default=None, metavar="ID",
                     help="Your id for this action: a retry with it never executes twice."),
        click.option("--reasoning", default="", help="With --propose: why (shown to the approver)."),
        click.option("--propose", "as_proposal", is_flag=True,
                     help="Propose the spread for approval instead of placing it."),
        click.option("--preview", "as_preview", is_flag=True,
                     help="Only preview: the legs' bid/ask/mid, the natural and mid net price, the risk gate and "
                          "the broker's margin what-if; nothing placed or stored."),
        click.option("--tif", type=click.Choice(["DAY", "GTC"], case_sensitive=False), default="DAY",
                     show_default=True, help="Time in force."),
        click.option("--limit", "limit", type=click.FloatRange(min=0, min_open=True), required=True, metavar="P",
                     help="Net limit price per spread (premium points): the most paid (BUY) or least received "
                          "(SELL)."),
        click.option("-q", "--quantity", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Spreads (with --propose it may be left out: sized by the spread's max loss)."),
        click.option("--action", type=click.Choice(["BUY", "SELL"], case_sensitive=False), required=True,
                     help="BUY the combo as written (debit) or SELL it (credit)."),
        click.option("--currency", default="USD", show_default=True, help="Currency."),
        click.option("--exchange", default="SMART", show_default=True, help="Underlying's exchange (futures)."),
        click.option("--sectype", "sec_type", default="STK", show_default=True,
                     help="Underlying's type: STK, IND or FUT (futures options)."),
        click.option("-e", "--expiry", required=expiry_required, default=None, metavar="DATE",
                     help="Expiry YYYYMMDD of every leg" + ("." if expiry_required else
                                                             " that names none (a leg may: calendars).")),
    ]
    for opt in opts:
        fn = opt(fn)
    return fn


def _expiry(text: str) -> str:
    from trader.tools.options import parse_expiry

    try:
        return parse_expiry(text)
    except ValueError:
        raise click.UsageError(f"--expiry must be YYYYMMDD, got {text!r}") from None


@click.command("vertical")
@click.argument("symbol")
@click.option("--right", "-r", type=click.Choice(["C", "P"], case_sensitive=False), required=True,
              help="C (call spread) or P (put spread).")
@click.option("--strikes", required=True, metavar="A/B", help="The two strikes, e.g. 5300/5200 (either order).")
@_combo_options
@click.pass_obj
@output(_render)
def vertical_cmd(app: AppContext, symbol: str, right: str, strikes: str, expiry: str, sec_type: str, exchange: str,
                 currency: str, action: str, quantity: int | None, limit: float, tif: str, as_proposal: bool,
                 as_preview: bool, reasoning: str, request_id: str | None) -> dict[str, Any]:
    """Vertical spread as one order.

    --action BUY = the debit spread, SELL = the credit spread.

    Example: options vertical SPX -e DATE --right P --strikes 5300/5200 --action SELL -q 1 --limit 20 sells the
    5300/5200 put spread for at least 20 credit. The risk gate sizes it by its defined max loss
    ((width − credit) × multiplier × quantity for a credit spread, the debit for a debit spread).
    """
    return vertical_order(app, symbol, expiry=_expiry(expiry), right=right, strikes=parse_strikes(strikes),
                          action=action, quantity=float(quantity) if quantity else None, limit=limit,
                          propose=as_proposal,
                          reasoning=reasoning, tif=tif, sec_type=sec_type, exchange=exchange.upper(),
                          currency=currency.upper(), request_id=request_id, preview=as_preview)


@click.command("combo")
@click.argument("symbol")
@click.option("--leg", "legs", multiple=True, required=True, metavar="'BUY|SELL [R] KC|P [EXPIRY]'",
              help="One leg as bought, 2 to 4 times: e.g. --leg 'BUY 250C' --leg 'SELL 260C'; a leg's own expiry "
                   "makes a calendar or diagonal: --leg 'BUY 250C 20270115' --leg 'SELL 250C 20261218'.")
@functools.partial(_combo_options, expiry_required=False)
@click.pass_obj
@output(_render)
def combo_cmd(app: AppContext, symbol: str, legs: tuple[str, ...], expiry: str | None, sec_type: str, exchange: str,
              currency: str, action: str, quantity: int | None, limit: float, tif: str, as_proposal: bool,
              as_preview: bool, reasoning: str, request_id: str | None) -> dict[str, Any]:
    """Option combo as one order.

    2 to 4 legs, one net limit price per combo. The legs are written for buying the combo; --action SELL
    reverses them. A leg naming its own expiry makes a calendar or diagonal, valued at the first expiry with
    the later legs at their intrinsic value (a long calendar's max loss is its debit). Refused by the risk
    gate when a short leg is uncovered (not defined risk) unless allowed in trading_filters.yaml.
    """
    from trader.trading.combos import ComboLeg
    from trader.trading.models import Action

    parsed = [parse_leg(text) for text in legs]
    if not 2 <= len(parsed) <= 4:
        raise click.UsageError(f"a combo has 2 to 4 legs, got {len(parsed)}")
    default = _expiry(expiry) if expiry else ""
    if not default and not all(p[4] for p in parsed):
        raise click.UsageError("give -e DATE, or an expiry in every leg (e.g. --leg 'BUY 250C 20261218')")
    out = []
    for act, ratio, strike, right, own in parsed:
        exp = own or default
        c = _resolve_option(app, symbol, exp, strike, right, sec_type=sec_type, exchange=exchange.upper(),
                            currency=currency.upper())
        out.append(ComboLeg(con_id=int(c["con_id"]), action=Action(act), ratio=ratio, strike=float(c["strike"]),
                            right=right, expiry=str(c.get("last_trade_date") or exp)[:8],
                            multiplier=float(c.get("multiplier") or 100), local_symbol=str(c.get("local_symbol") or ""),
                            exchange=str(c.get("exchange") or "SMART")))
    return combo_order(app, symbol, action, out, quantity=float(quantity) if quantity else None, limit=limit,
                       propose=as_proposal,
                       reasoning=reasoning, tif=tif, currency=currency.upper(), request_id=request_id,
                       preview=as_preview)
