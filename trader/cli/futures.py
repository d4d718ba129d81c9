"""``futures roll SYM``: the front-month future and the next one, with their last trade dates.

The front month follows the rule in ``trader/trading/contract_select.py`` (the earliest contract more than
``FUT_ROLL_DAYS`` days from its last trade date); the next is the first contract month after it that the broker
lists. Both come from trader_service's ``resolve``, so a real gateway and the simulated one answer the same way.
"""

from __future__ import annotations

from typing import Any

import click

from trader.cli.core import AppContext, output

MONTHS_AHEAD = 12  # contract months searched for the next contract after the front


def _next_month(yyyymm: str) -> str:
    year, month = int(yyyymm[:4]), int(yyyymm[4:6])
    return f"{year + month // 12}{month % 12 + 1:02d}"


def _render_roll(r: dict[str, Any], console: Any) -> None:
    for k in ("front", "next"):
        c = r.get(k)
        if c:
            console.print(f"{k:<5} {c['local_symbol']:<8} last trade {c['last_trade_date']}  conId {c['con_id']}"
                          f"  ×{c['multiplier']}")
    console.print(f"roll rule: {r['roll_rule']}", style="dim")


@click.group()
def futures() -> None:
    """Futures: the front month and the roll."""


@futures.command("roll")
@click.argument("symbol")
@click.option("--exchange", default="SMART", show_default=True, help="Exchange (SMART: any).")
@click.option("--currency", default="USD", show_default=True, help="Contract currency.")
@click.pass_obj
@output(_render_roll)
def roll(app: AppContext, symbol: str, exchange: str, currency: str) -> dict[str, Any]:
    """The front-month contract of SYMBOL and the next one, with last trade dates and days to each."""
    from datetime import UTC, datetime

    from trader.cli.portfolio import TRADER
    from trader.errors import ContractNotFound
    from trader.trading.contract_select import FUT_ROLL_DAYS

    timeout = max(app.config.rpc_timeout, 10.0)
    kw = {"sec_type": "FUT", "exchange": exchange.upper(), "currency": currency.upper()}
    front = app.call(TRADER, "resolve", symbol.upper(), timeout=timeout, **kw)
    month, nxt = front["last_trade_date"][:6], None
    for _ in range(MONTHS_AHEAD):
        month = _next_month(month)
        try:
            nxt = app.call(TRADER, "resolve", symbol.upper(), timeout=timeout, expiry=month, **kw)
            break
        except ContractNotFound:
            continue
    today = datetime.now(UTC).date()

    def row(c: dict[str, Any] | None) -> dict[str, Any] | None:
        if c is None:
            return None
        days = (datetime.strptime(c["last_trade_date"][:8], "%Y%m%d").date() - today).days
        return {k: c.get(k) for k in ("local_symbol", "con_id", "last_trade_date", "multiplier", "exchange",
                                      "currency")} | {"days_to_last_trade": days}

    return {"symbol": symbol.upper(), "front": row(front), "next": row(nxt),
            "roll_rule": f"front = earliest contract more than {FUT_ROLL_DAYS} days before its last trade date"}
