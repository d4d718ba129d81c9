"""Local symbols, the futures front-month rule and bounded ambiguity reports (pure, no broker)."""

from __future__ import annotations

from datetime import date

from trader.trading.contract_select import (
    FUT_ROLL_DAYS,
    ambiguity_report,
    contract_multiplier,
    front_month,
    parse_local_symbol,
)


def fut(ltd: str, con_id: int, **kw) -> dict:
    return {"symbol": "ES", "sec_type": "FUT", "con_id": con_id, "last_trade_date": ltd, "trading_class": "ES",
            "multiplier": "50", "exchange": "CME", "currency": "USD", "local_symbol": f"ES{con_id}", **kw}


def test_local_symbols():
    assert parse_local_symbol("ESZ6", "FUT") == {"symbol": "ES", "sec_type": "FUT", "local_symbol": "ESZ6"}
    assert parse_local_symbol("ESZ6", "STK") is None  # a short ticker looks the same: only with --sectype FUT
    occ = parse_local_symbol("aapl 261218C00250000")
    assert occ == {"symbol": "AAPL", "sec_type": "OPT", "local_symbol": "AAPL  261218C00250000"}
    assert parse_local_symbol("ESZ6 C6000", "FOP")["symbol"] == "ES"
    assert parse_local_symbol("AAPL") is None


def test_front_month_rolls_inside_the_window():
    today = date(2026, 12, 14)
    dec, mar = fut("20261218", 1), fut("20270319", 2)
    assert (date(2026, 12, 18) - today).days <= FUT_ROLL_DAYS
    assert front_month([mar, dec], today)["con_id"] == 2  # December rolled
    assert front_month([mar, dec], date(2026, 11, 1))["con_id"] == 1
    assert front_month([dec, fut("20261218", 3, multiplier="5")], date(2026, 11, 1)) is None  # two series
    assert front_month([fut("20261120", 4), dec], date(2026, 12, 1))["con_id"] == 1  # expired ones never


def test_ambiguity_report_is_bounded_and_names_the_picking_flags():
    chain = [{"symbol": "AAPL", "sec_type": "OPT", "con_id": i, "last_trade_date": exp, "strike": k, "right": r,
              "multiplier": "100", "exchange": "SMART", "currency": "USD"}
             for i, (exp, k, r) in enumerate((e, k, r) for e in ("20261218", "20270115") for k in range(100, 300, 5)
                                             for r in "CP")]
    message, listed = ambiguity_report(chain, "OPT|AAPL|SMART|USD")
    assert len(listed) == 5 and message.startswith(f"{len(chain)} contracts match")
    assert "--expiry, --strike, --right" in message and "20270115" in message
    for c in listed:
        assert c["flags"] == (f"--expiry {c['last_trade_date']} --strike {c['strike']:g} --right {c['right']} "
                              f"(or --conid {c['con_id']})")
    assert contract_multiplier({"multiplier": "50"}) == 50.0 and contract_multiplier({}) == 1.0
