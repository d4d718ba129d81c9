"""Symbols the NL parser knows (pure data): futures roots with their listed contract months, and equities/ETFs.

A symbol not listed here is refused ("unknown symbol") rather than guessed: a misread ticker costs money.
"""

from __future__ import annotations

QUARTERLY = (3, 6, 9, 12)
ALL_MONTHS = tuple(range(1, 13))

# root -> contract months listed (1..12)
FUTURES_ROOTS: dict[str, tuple[int, ...]] = {
    "ES": QUARTERLY, "MES": QUARTERLY, "NQ": QUARTERLY, "MNQ": QUARTERLY, "RTY": QUARTERLY, "M2K": QUARTERLY,
    "YM": QUARTERLY, "MYM": QUARTERLY, "ZB": QUARTERLY, "ZN": QUARTERLY, "ZF": QUARTERLY, "ZT": QUARTERLY,
    "CL": ALL_MONTHS, "MCL": ALL_MONTHS, "NG": ALL_MONTHS, "GC": (2, 4, 6, 8, 10, 12), "MGC": (2, 4, 6, 8, 10, 12),
    "SI": (3, 5, 7, 9, 12), "HG": (3, 5, 7, 9, 12), "ZC": (3, 5, 7, 9, 12), "ZS": (1, 3, 5, 7, 8, 9, 11),
    "ZW": (3, 5, 7, 9, 12),
}

EQUITY_SYMBOLS: frozenset[str] = frozenset("""
SPY QQQ IWM DIA TLT GLD SLV USO XLF XLE XLK XLV XLI XLY XLP XLU SMH SOXX ARKK EEM EFA HYG LQD VXX UVXY SQQQ TQQQ
AAPL MSFT NVDA AMZN GOOGL GOOG META TSLA AMD NFLX INTC AVGO ORCL CRM ADBE CSCO QCOM MU BA JPM BAC GS MS WFC C
XOM CVX KO PEP WMT COST HD DIS NKE MCD V MA PYPL UBER ABNB PLTR COIN SHOP SQ SNOW MRNA PFE JNJ UNH LLY ABBV BRK.B
""".split()) - {"C", "V", "MA"}  # one-letter / word-like tickers would be misread from ordinary text

# root -> the exchange IB lists it on (resolve needs it for FUT/FOP; SMART does not route futures)
FUTURES_EXCHANGES: dict[str, str] = {
    **dict.fromkeys(("ES", "MES", "NQ", "MNQ", "RTY", "M2K"), "CME"),
    **dict.fromkeys(("YM", "MYM", "ZB", "ZN", "ZF", "ZT", "ZC", "ZS", "ZW"), "CBOT"),
    **dict.fromkeys(("CL", "MCL", "NG"), "NYMEX"),
    **dict.fromkeys(("GC", "MGC", "SI", "HG"), "COMEX"),
}
