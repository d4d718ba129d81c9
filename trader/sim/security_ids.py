"""Security ids (ISIN) for the simulated stocks and ETFs, as IB lists them in contractDetails' secIdList.

Real ISINs for the contracts that carry IB's real conIds and are most traded; every other stock gets a
placeholder ISIN with the right country prefix and a valid check digit (``<CC>X<8-digit conId><check>``), so
clients that require one (nautilus_trader's equity parser does) accept every simulated stock. The ``X`` after
the country code marks it as ours.
"""

from __future__ import annotations

# (symbol, currency) → ISIN; each one passes isin_check_digit (tests/sim/test_field_fidelity.py)
REAL_ISINS: dict[tuple[str, str], str] = {
    ("AAPL", "USD"): "US0378331005", ("MSFT", "USD"): "US5949181045", ("NVDA", "USD"): "US67066G1040",
    ("AMZN", "USD"): "US0231351067", ("GOOGL", "USD"): "US02079K3059", ("GOOG", "USD"): "US02079K1079",
    ("META", "USD"): "US30303M1027", ("TSLA", "USD"): "US88160R1014", ("BRK B", "USD"): "US0846707026",
    ("JPM", "USD"): "US46625H1005", ("XOM", "USD"): "US30231G1022", ("JNJ", "USD"): "US4781601046",
    ("WMT", "USD"): "US9311421039", ("AMD", "USD"): "US0079031078", ("CSCO", "USD"): "US17275R1023",
    ("IBM", "USD"): "US4592001014", ("GS", "USD"): "US38141G1040", ("MS", "USD"): "US6174464486",
    ("INTC", "USD"): "US4581401001", ("SPY", "USD"): "US78462F1030", ("QQQ", "USD"): "US46090E1038",
    ("IWM", "USD"): "US4642876555", ("DIA", "USD"): "US78467X1090", ("GLD", "USD"): "US78463V1070",
    ("SLV", "USD"): "US46428Q1094", ("TLT", "USD"): "US4642874329", ("XLF", "USD"): "US81369Y6059",
    ("SMH", "USD"): "US92189F6768", ("FXI", "USD"): "US4642871846",
}
COUNTRY_BY_CURRENCY = {"USD": "US", "EUR": "DE", "GBP": "GB", "JPY": "JP", "AUD": "AU", "CAD": "CA", "CHF": "CH"}


def isin_check_digit(body: str) -> str:
    """The ISIN check digit of an 11-character body (letters as 10…35, then Luhn over the digits)."""
    digits = "".join(str(int(ch, 36)) for ch in body.upper())
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def isin_for(symbol: str, currency: str, con_id: int) -> str:
    """The stock's ISIN: the real one when we know it, else a check-digit-valid placeholder."""
    real = REAL_ISINS.get((symbol, currency))
    if real:
        return real
    body = f"{COUNTRY_BY_CURRENCY.get(currency, 'XS')}X{con_id % 10**8:08d}"
    return body + isin_check_digit(body)


def sec_id_list(sec_type: str, symbol: str, currency: str, con_id: int) -> list[tuple[str, str]]:
    """contractDetails' secIdList: ISIN for stocks and ETFs (IB sends none for FX, futures, indices)."""
    if sec_type != "STK":
        return []
    return [("ISIN", isin_for(symbol, currency, con_id))]
