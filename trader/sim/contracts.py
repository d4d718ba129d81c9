"""The simulated contract universe: real symbols from a CSV plus futures/options generated from rules.

Equities, ETFs, FX pairs and indices come from ``trader/sim/data/contracts.csv`` (IB's real conIds where
they are publicly documented, ``placeholder_id=1`` rows use ids in 900_000_000–909_999_999). Futures and
options are generated at load time relative to ``today`` (quarterly futures, monthly/weekly option
expirations) so they never go stale; their conIds are placeholders derived from a hash of the contract
fields (910_000_000–999_999_999), stable for the same contract across restarts.
"""

from __future__ import annotations

import calendar
import csv
import zlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

from trader.sim.models import SimContract

# Exchanges that IB SMART-routes for the sec types where "SMART" is a wildcard.
_SMART_SEC_TYPES = frozenset({"STK", "OPT"})
_EXCHANGE_ALIASES = {"GLOBEX": "CME", "ISLAND": "NASDAQ", "NYSEARCA": "ARCA", "FWB": "IBIS", "XETRA": "IBIS"}
_RIGHT_ALIASES = {"CALL": "C", "PUT": "P", "C": "C", "P": "P", "": ""}
_FUT_MONTH_CODES = "FGHJKMNQUVXZ"

_DERIVED_ID_BASE = 910_000_000
_DERIVED_ID_SPAN = 89_999_999

# Futures generated from rules: symbol -> (underlying index symbol, multiplier, min tick, long name)
FUTURE_RULES: dict[str, tuple[str, str, float, str]] = {
    "ES": ("SPX", "50", 0.25, "E-mini S&P 500"),
    "MES": ("SPX", "5", 0.25, "Micro E-Mini S&P 500 Stock Price Index"),
    "NQ": ("NDX", "20", 0.25, "E-mini NASDAQ 100"),
    "MNQ": ("NDX", "2", 0.25, "Micro E-Mini Nasdaq-100 Index"),
}
# Stock options generated from rules: underlying -> (strike step, half-width of the ladder as a fraction)
OPTION_RULES: dict[str, tuple[float, float]] = {"SPY": (5.0, 0.15), "AAPL": (5.0, 0.20)}
N_FUTURES = 4
N_MONTHLY_EXPIRIES = 4
N_WEEKLY_EXPIRIES = 2
FOP_STRIKE_STEP = 50.0
FOP_HALF_WIDTH = 0.15

US_LIQUID_HOURS = "0930-1600"


def third_friday(year: int, month: int) -> date:
    """The third Friday of a month (standard monthly option / quarterly future expiry)."""
    first = date(year, month, 1)
    offset = (calendar.FRIDAY - first.weekday()) % 7
    return first + timedelta(days=offset + 14)


def _add_months(d: date, n: int) -> tuple[int, int]:
    m = d.month - 1 + n
    return d.year + m // 12, m % 12 + 1


def _derived_id(ident: str, used: set[int]) -> int:
    cid = _DERIVED_ID_BASE + zlib.crc32(ident.encode()) % _DERIVED_ID_SPAN
    while cid in used:  # deterministic probing; collisions are rare
        cid += 1
    used.add(cid)
    return cid


def occ_local_symbol(symbol: str, expiry: str, right: str, strike: float) -> str:
    """OCC option symbol as IB shows it in localSymbol, e.g. ``'SPY   261218C00600000'``."""
    return f"{symbol:<6}{expiry[2:]}{right}{round(strike * 1000):08d}"


def _fmt_strike(x: float) -> str:
    return f"{x:g}"


class ContractUniverse:
    """Every contract the simulator knows, with IB-style lookup (`find`), search and option chains."""

    def __init__(self, contracts: Iterable[SimContract]) -> None:
        self._by_id: dict[int, SimContract] = {}
        self._by_symbol: dict[str, list[SimContract]] = {}
        for c in contracts:
            if c.con_id in self._by_id:
                raise ValueError(f"duplicate conId {c.con_id} ({c.symbol} {c.sec_type})")
            self._by_id[c.con_id] = c
            self._by_symbol.setdefault(c.symbol.upper(), []).append(c)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: Path | None = None, today: date | None = None,
             spot: Callable[[SimContract], float] | None = None) -> ContractUniverse:
        """Load the CSV (default: package data) and generate futures/options relative to `today` (UTC); option
        ladders centre on `spot(underlying root)` (the simulated market's price today, trader.sim.market.model_spot)
        or, without it, on the CSV price."""
        today = today or datetime.now(UTC).date()
        if path is None:
            text = resources.files("trader.sim").joinpath("data/contracts.csv").read_text()
        else:
            text = Path(path).read_text()
        base = [_row_to_contract(row) for row in csv.DictReader(text.splitlines())]
        used = {c.con_id for c in base}
        by_sym = {(c.symbol, c.sec_type): c for c in base}
        centre = spot or (lambda c: c.start_price)
        derived = _generate_futures(by_sym, today, used)
        derived += _generate_stock_options(by_sym, today, used, centre)
        derived += _generate_future_options(derived, by_sym, today, used, centre)
        return cls(base + derived)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(self._by_id.values())

    # ------------------------------------------------------------------ lookup
    def by_con_id(self, con_id: int) -> SimContract | None:
        """The contract with this conId, or None."""
        return self._by_id.get(int(con_id))

    def find(
        self,
        symbol: str = "",
        sec_type: str = "",
        exchange: str = "",
        currency: str = "",
        last_trade_date: str = "",
        strike: float = 0.0,
        right: str = "",
        local_symbol: str = "",
        trading_class: str = "",
        multiplier: str = "",
        con_id: int = 0,
    ) -> list[SimContract]:
        """Contracts matching an IB-style partial description; empty/zero fields are wildcards.

        "SMART" matches any exchange for STK/OPT; a primary exchange (e.g. "NASDAQ", "IBIS") matches too.
        `last_trade_date` may be a contract month ("YYYYMM") or a date ("YYYYMMDD").
        """
        if con_id:
            c = self.by_con_id(con_id)
            return [c] if c is not None else []
        if symbol:
            candidates: Iterable[SimContract] = self._by_symbol.get(symbol.upper(), [])
        elif local_symbol:
            candidates = self._by_id.values()
        else:
            return []  # IB needs at least a symbol, localSymbol or conId
        sec_type = sec_type.upper()
        exchange = _EXCHANGE_ALIASES.get(exchange.upper(), exchange.upper())
        currency = currency.upper()
        right_norm = _RIGHT_ALIASES.get(right.upper(), right.upper()) if right else ""
        local_norm = " ".join(local_symbol.upper().split())
        out = []
        for c in candidates:
            if sec_type and c.sec_type != sec_type:
                continue
            if exchange and not _exchange_matches(c, exchange):
                continue
            if currency and c.currency != currency:
                continue
            if last_trade_date and not (
                c.last_trade_date.startswith(last_trade_date) or c.contract_month == last_trade_date
            ):
                continue
            if strike and abs(c.strike - float(strike)) > 1e-6:
                continue
            if right_norm and c.right != right_norm:
                continue
            if local_norm and " ".join(c.local_symbol.upper().split()) != local_norm:
                continue
            if trading_class and c.trading_class.upper() != trading_class.upper():
                continue
            if multiplier and c.multiplier_value != _float_or_zero(multiplier):
                continue
            out.append(c)
        return sorted(out, key=lambda c: (c.sec_type, c.last_trade_date, c.right, c.strike, c.con_id))

    def search(self, pattern: str, limit: int = 16) -> list[SimContract]:
        """reqMatchingSymbols: underlyings (not individual futures/options) whose symbol or name matches.

        Symbol prefix matches come first, then name substring matches; at most `limit` results.
        """
        p = pattern.strip().upper()
        if not p:
            return []
        primaries = [c for c in self._by_id.values() if c.sec_type in ("STK", "IND", "CASH")]
        exact = [c for c in primaries if c.symbol.upper() == p or c.local_symbol.upper() == p]
        prefix = [c for c in primaries if c.symbol.upper().startswith(p) and c not in exact]
        by_name = [c for c in primaries if p in c.long_name.upper() and c not in exact and c not in prefix]
        ordered = exact + sorted(prefix, key=lambda c: (len(c.symbol), c.symbol)) + by_name
        return ordered[:limit]

    def derivative_sec_types(self, underlying_con_id: int) -> list[str]:
        """Sec types of derivatives on an underlying (contractDescription.derivativeSecTypes)."""
        kinds = {c.sec_type for c in self._by_id.values() if c.underlying_con_id == underlying_con_id}
        return sorted(kinds & {"OPT", "FOP", "FUT"})

    def option_chain(self, underlying_con_id: int) -> list[tuple[str, str, str, list[str], list[float]]]:
        """reqSecDefOptParams rows: (exchange, trading_class, multiplier, expirations, strikes)."""
        groups: dict[tuple[str, str, str], tuple[set[str], set[float]]] = {}
        for c in self._by_id.values():
            if c.underlying_con_id != underlying_con_id or c.sec_type not in ("OPT", "FOP"):
                continue
            exps, strikes = groups.setdefault((c.exchange, c.trading_class, c.multiplier), (set(), set()))
            exps.add(c.last_trade_date)
            strikes.add(c.strike)
        return [
            (exch, tc, mult, sorted(exps), sorted(strikes))
            for (exch, tc, mult), (exps, strikes) in sorted(groups.items())
        ]

    def options_of(self, underlying_con_id: int) -> list[SimContract]:
        """All options (OPT/FOP) on an underlying."""
        return [
            c for c in self._by_id.values() if c.underlying_con_id == underlying_con_id and c.is_derivative
        ]


def _exchange_matches(c: SimContract, exchange: str) -> bool:
    if exchange in (c.exchange, c.primary_exchange):
        return True
    if exchange == "SMART" and c.sec_type in _SMART_SEC_TYPES:
        return True
    return exchange in c.valid_exchanges.split(",")


def _float_or_zero(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return 0.0


def _row_to_contract(row: dict[str, str]) -> SimContract:
    sec_type = row["sec_type"]
    exchange, primary = row["exchange"], row["primary_exchange"]
    if sec_type == "STK":
        valid = ",".join(dict.fromkeys(["SMART", primary] if primary else ["SMART"]))
    else:
        valid = exchange
    return SimContract(
        con_id=int(row["con_id"]),
        symbol=row["symbol"],
        sec_type=sec_type,
        exchange=exchange,
        primary_exchange=primary,
        currency=row["currency"],
        local_symbol=row["local_symbol"],
        trading_class=row["trading_class"],
        multiplier=row["multiplier"],
        last_trade_date="",
        strike=0.0,
        right="",
        min_tick=float(row["min_tick"]),
        long_name=row["long_name"],
        underlying_con_id=0,
        placeholder_id=row["placeholder_id"] == "1",
        time_zone=row["time_zone"],
        valid_exchanges=valid,
        industry=row["industry"],
        category=row["category"],
        market_name=row["trading_class"],
        start_price=float(row["price"]),
        volatility=float(row["volatility"]),
        avg_volume=float(row["avg_volume"] or 0),
    )


def _generate_futures(
    by_sym: dict[tuple[str, str], SimContract], today: date, used: set[int]
) -> list[SimContract]:
    out = []
    for sym, (und_sym, mult, tick, name) in FUTURE_RULES.items():
        und = by_sym.get((und_sym, "IND"))
        if und is None:
            continue
        n, k = 0, 0
        while n < N_FUTURES:
            year, month = _add_months(today, k)
            k += 1
            if month % 3:
                continue
            expiry = third_friday(year, month)
            if expiry < today:
                continue
            n += 1
            ltd = expiry.strftime("%Y%m%d")
            local = f"{sym}{_FUT_MONTH_CODES[month - 1]}{year % 10}"
            cid = _derived_id(f"FUT|{sym}|CME|{ltd}", used)
            out.append(
                SimContract(
                    con_id=cid, symbol=sym, sec_type="FUT", exchange="CME", primary_exchange="",
                    currency="USD", local_symbol=local, trading_class=sym, multiplier=mult,
                    last_trade_date=ltd, strike=0.0, right="", min_tick=tick, long_name=name,
                    underlying_con_id=und.con_id, placeholder_id=True, time_zone="US/Central",
                    valid_exchanges="CME", market_name=sym, underlying_symbol=und_sym,
                    underlying_sec_type="IND", contract_month=f"{year}{month:02d}",
                    start_price=und.start_price, volatility=und.volatility,
                    avg_volume=1_500_000.0 if sym in ("ES", "NQ") else 300_000.0,
                )
            )
    return out


def _expiries(today: date) -> list[date]:
    monthly = []
    k = 0
    while len(monthly) < N_MONTHLY_EXPIRIES:
        year, month = _add_months(today, k)
        k += 1
        d = third_friday(year, month)
        if d >= today:
            monthly.append(d)
    weekly = []
    d = today + timedelta(days=(calendar.FRIDAY - today.weekday()) % 7)
    while len(weekly) < N_WEEKLY_EXPIRIES:
        if d not in monthly:
            weekly.append(d)
        d += timedelta(days=7)
    return sorted(set(monthly + weekly))


def _option(
    und: SimContract, sec_type: str, exchange: str, trading_class: str, mult: str, expiry: date,
    strike: float, right: str, tick: float, used: set[int], time_zone: str,
) -> SimContract:
    ltd = expiry.strftime("%Y%m%d")
    if sec_type == "OPT":
        local = occ_local_symbol(und.symbol, ltd, right, strike)
    else:
        local = f"{trading_class}{_FUT_MONTH_CODES[expiry.month - 1]}{expiry.year % 10} {right}{_fmt_strike(strike)}"
    cid = _derived_id(f"{sec_type}|{und.symbol}|{trading_class}|{exchange}|{ltd}|{right}|{strike:g}", used)
    return SimContract(
        con_id=cid, symbol=und.symbol, sec_type=sec_type, exchange=exchange, primary_exchange="",
        currency=und.currency, local_symbol=local, trading_class=trading_class, multiplier=mult,
        last_trade_date=ltd, strike=strike, right=right, min_tick=tick,
        long_name=und.long_name, underlying_con_id=und.con_id, placeholder_id=True, time_zone=time_zone,
        valid_exchanges=exchange if sec_type == "FOP" else "SMART,CBOE,AMEX,ISE,PHLX,BOX,NASDAQOM,ARCA",
        market_name=trading_class, underlying_symbol=und.symbol, underlying_sec_type=und.sec_type,
        contract_month=ltd[:6], start_price=0.0, volatility=und.volatility, avg_volume=20_000.0,
    )


def _ladder(center: float, step: float, half_width: float) -> list[float]:
    lo = max(step, round(center * (1 - half_width) / step) * step)
    hi = round(center * (1 + half_width) / step) * step
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 4) for i in range(n + 1)]


def _generate_stock_options(
    by_sym: dict[tuple[str, str], SimContract], today: date, used: set[int], centre: Callable[[SimContract], float]
) -> list[SimContract]:
    out = []
    for sym, (step, half_width) in OPTION_RULES.items():
        und = by_sym.get((sym, "STK"))
        if und is None:
            continue
        for expiry in _expiries(today):
            for strike in _ladder(centre(und), step, half_width):
                for right in ("C", "P"):
                    out.append(
                        _option(und, "OPT", "SMART", sym, "100", expiry, strike, right, 0.01, used,
                                und.time_zone)
                    )
    return out


def _generate_future_options(
    derived: list[SimContract], by_sym: dict[tuple[str, str], SimContract], today: date, used: set[int],
    centre: Callable[[SimContract], float],
) -> list[SimContract]:
    """ES options (FOP) on the front ES future: monthly expiries up to the future's own expiry."""
    es = sorted((c for c in derived if c.symbol == "ES" and c.sec_type == "FUT"), key=lambda c: c.last_trade_date)
    if not es:
        return []
    front = es[0]
    front_expiry = datetime.strptime(front.last_trade_date, "%Y%m%d").date()
    exps = [d for d in _expiries(today) if d <= front_expiry and d.day >= 15 and d.day <= 21][:3]
    out = []
    for expiry in exps:
        index = by_sym.get((front.underlying_symbol, "IND"))
        level = front.start_price * (centre(index) / index.start_price if index is not None else 1.0)
        for strike in _ladder(level, FOP_STRIKE_STEP, FOP_HALF_WIDTH):
            for right in ("C", "P"):
                c = _option(front, "FOP", "CME", "ES", "50", expiry, strike, right, 0.25, used, "US/Central")
                out.append(replace(c, long_name="E-mini S&P 500"))
    return out
