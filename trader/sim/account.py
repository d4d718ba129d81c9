"""The simulated brokerage account: cash, positions with average cost, P&L, margin, commissions.

Conventions follow IB: a position's ``avg_cost`` includes the multiplier and the opening commissions
(AAPL bought 100 @ 200.00 with $1 commission → avg_cost 200.01); realized P&L of a closing fill is
``(price × multiplier − avg_cost) × closed quantity − commission``. Futures are marked to market (no
notional cash moves; only P&L and commissions hit cash). Amounts are kept in the contract's currency and
converted to the base currency with the simulated FX quotes when reported.

State is a small JSON file written atomically (temporary file + ``os.replace``) after every change.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trader.sim.models import SimContract

if TYPE_CHECKING:
    from trader.sim.market import SimMarket

# Reg-T style margin rates and fixed per-contract futures margin (initial, maintenance).
STK_INITIAL_MARGIN = 0.50
STK_MAINT_MARGIN = 0.25
FX_MARGIN = 0.03
FUTURES_MARGIN: dict[str, tuple[float, float]] = {
    "ES": (25_000.0, 22_700.0), "MES": (2_500.0, 2_270.0), "NQ": (35_000.0, 31_800.0), "MNQ": (3_500.0, 3_180.0),
}
DEFAULT_FUTURES_MARGIN = (10_000.0, 9_000.0)
# Commissions (IB "fixed" pricing, simplified)
STK_PER_SHARE, STK_MIN, STK_MAX_PCT = 0.005, 1.0, 0.01
NON_US_STK_RATE, NON_US_STK_MIN = 0.0005, 1.25
FUT_PER_CONTRACT = {"MES": 0.25, "MNQ": 0.25}
FUT_DEFAULT_PER_CONTRACT = 0.85
OPT_PER_CONTRACT, OPT_MIN = 0.65, 1.0
FX_RATE, FX_MIN = 0.00002, 2.0


@dataclass(slots=True)
class PositionState:
    """One position's book-keeping (all money in the contract's currency)."""

    con_id: int
    currency: str
    multiplier: float
    sec_type: str
    position: float = 0.0
    avg_cost: float = 0.0  # per unit, multiplier and commissions included (IB's avgCost)
    realized: float = 0.0  # since the account was opened
    # daily P&L book-keeping: position at the start of `day`, cash flows of today's trades
    day: str = ""
    position_sod: float = 0.0
    day_flow: float = 0.0
    realized_today: float = 0.0


def _atomic_write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _fmt(v: float) -> str:
    return f"{v:.2f}"


class SimAccount:
    """Cash per currency and positions; values/P&L are computed against a `SimMarket`."""

    def __init__(self, account_id: str = "DU0000001", starting_cash: float = 1_000_000.0,
                 base_currency: str = "USD", state_path: Path | None = None) -> None:
        self.account_id = account_id
        self.base_currency = base_currency
        self.starting_cash = float(starting_cash)
        self.state_path = Path(state_path) if state_path is not None else None
        self.cash: dict[str, float] = {base_currency: float(starting_cash)}
        self._positions: dict[int, PositionState] = {}
        self._lock = threading.RLock()
        if self.state_path is not None and self.state_path.exists():
            self._load(json.loads(self.state_path.read_text()))

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        """Write the state file atomically (no-op without a state_path)."""
        if self.state_path is None:
            return
        with self._lock:
            data = {
                "version": 1,
                "account_id": self.account_id,
                "base_currency": self.base_currency,
                "starting_cash": self.starting_cash,
                "cash": self.cash,
                "positions": [asdict(p) for p in self._positions.values()],
            }
        _atomic_write_json(self.state_path, data)

    @classmethod
    def restore(cls, state_path: Path, **defaults) -> SimAccount:
        """The account saved at `state_path` (a fresh one with `defaults` if the file does not exist)."""
        return cls(state_path=state_path, **defaults)

    def _load(self, data: dict) -> None:
        self.account_id = data.get("account_id", self.account_id)
        self.base_currency = data.get("base_currency", self.base_currency)
        self.starting_cash = float(data.get("starting_cash", self.starting_cash))
        self.cash = {k: float(v) for k, v in data.get("cash", {}).items()}
        self._positions = {int(p["con_id"]): PositionState(**p) for p in data.get("positions", [])}

    # ------------------------------------------------------------------ commissions
    def commission_for(self, contract: SimContract, shares: float, price: float) -> float:
        """IB-style fixed commission of one execution, in the contract's currency."""
        qty = abs(shares)
        value = qty * price * contract.multiplier_value
        st = contract.sec_type
        if st == "STK":
            if contract.currency == "USD":
                # $0.005/share, at least $1, at most 1% of the trade value
                return round(min(max(qty * STK_PER_SHARE, STK_MIN), value * STK_MAX_PCT), 4)
            return round(max(value * NON_US_STK_RATE, NON_US_STK_MIN), 4)
        if st == "FUT":
            return round(qty * FUT_PER_CONTRACT.get(contract.symbol, FUT_DEFAULT_PER_CONTRACT), 4)
        if st in ("OPT", "FOP"):
            return round(max(qty * OPT_PER_CONTRACT, OPT_MIN), 4)
        if st == "CASH":
            return round(max(value * FX_RATE, FX_MIN), 4)
        return 0.0

    # ------------------------------------------------------------------ fills
    def apply_fill(self, contract: SimContract, side: str, shares: float, price: float, commission: float,
                   at: datetime | None = None) -> float:
        """Book one execution; returns its realized P&L (0.0 when it only opens or adds to a position)."""
        side = side.upper()
        if side not in ("BUY", "BOT", "SELL", "SLD"):
            raise ValueError(f"bad side {side!r}")
        signed = abs(shares) if side in ("BUY", "BOT") else -abs(shares)
        day = (at or datetime.now(UTC)).astimezone(UTC).date().isoformat()
        with self._lock:
            p = self._positions.get(contract.con_id)
            if p is None:
                p = PositionState(contract.con_id, contract.currency, contract.multiplier_value, contract.sec_type)
                self._positions[contract.con_id] = p
            self._roll_day(p, day)
            mult = p.multiplier
            realized = 0.0
            if p.position != 0 and (p.position > 0) != (signed > 0):  # reduces, closes or flips
                closed = min(abs(signed), abs(p.position))
                direction = 1.0 if p.position > 0 else -1.0
                # the commission is split pro rata between the closing and (on a flip) the opening part
                close_comm = commission * closed / abs(signed)
                realized = (price * mult - p.avg_cost) * closed * direction - close_comm
                new_pos = p.position + signed
                if abs(new_pos) < 1e-9:
                    p.position, p.avg_cost = 0.0, 0.0
                elif (new_pos > 0) != (p.position > 0):  # flipped: the rest opens at this fill
                    p.position = new_pos
                    p.avg_cost = self._open_cost(price * mult, abs(new_pos), commission - close_comm, new_pos > 0)
                else:
                    p.position = new_pos
                p.realized += realized
                p.realized_today += realized
            else:  # opens or adds: commissions go into the average cost, as IB does
                total = abs(p.position) + abs(signed)
                p.avg_cost = (p.avg_cost * abs(p.position)
                              + self._open_cost(price * mult, abs(signed), commission, signed > 0) * abs(signed)) / total
                p.position += signed
            ccy = contract.currency
            if contract.sec_type == "FUT":
                # futures are marked to market: no notional changes hands; P&L reaches cash when realized
                # (opening commissions sit in avg_cost, so they reach cash through the realized P&L)
                delta_cash = realized
            else:
                delta_cash = -signed * price * mult - commission
            self.cash[ccy] = self.cash.get(ccy, 0.0) + delta_cash
            if contract.sec_type == "CASH":  # an FX trade exchanges currencies: the base currency's balance moves
                self.cash[contract.symbol] = self.cash.get(contract.symbol, 0.0) + signed * mult
            p.day_flow += signed * price * mult + commission
            self.save()
            return realized

    @staticmethod
    def _open_cost(notional_per_unit: float, qty: float, commission: float, long: bool) -> float:
        """Average cost per unit of an opening fill: longs add the commission, shorts deduct it."""
        return notional_per_unit + (commission if long else -commission) / qty

    def _roll_day(self, p: PositionState, day: str) -> None:
        if p.day != day:
            p.day, p.position_sod, p.day_flow, p.realized_today = day, p.position, 0.0, 0.0

    # ------------------------------------------------------------------ positions
    def positions(self) -> list[tuple[int, float, float]]:
        """(con_id, position, avg_cost) for every non-flat position."""
        with self._lock:
            return [(p.con_id, p.position, p.avg_cost) for p in self._positions.values() if p.position != 0]

    def position(self, con_id: int) -> tuple[float, float]:
        """(position, avg_cost) of one contract ((0, 0) when flat)."""
        p = self._positions.get(con_id)
        return (p.position, p.avg_cost) if p is not None else (0.0, 0.0)

    def cash_balances(self) -> dict[str, float]:
        """Cash per currency (updateAccountValue "CashBalance" per currency)."""
        with self._lock:
            return dict(self.cash)

    def currency_rows(self, market: SimMarket) -> list[tuple[str, str, str]]:
        """IB's per-currency account values (tag, value, currency): ``CashBalance`` and ``ExchangeRate`` (base units
        per unit) of every currency held, and the ``CashBalance`` total in ``BASE``."""
        rows, total = [], 0.0
        for ccy, amount in sorted(self.cash_balances().items()):
            try:
                rate = self.fx_rate(ccy, market)
            except KeyError:
                continue  # no quote to value it: IB would still list it, but the total could not include it
            total += amount * rate
            rows += [("CashBalance", _fmt(amount), ccy), ("ExchangeRate", f"{rate:.6f}", ccy)]
        rows.append(("CashBalance", _fmt(total), "BASE"))
        return rows

    # ------------------------------------------------------------------ valuation
    def fx_rate(self, currency: str, market: SimMarket) -> float:
        """Units of base currency per unit of `currency`, from the simulated FX quotes."""
        if currency == self.base_currency:
            return 1.0
        base = self.base_currency
        u = market.universe
        direct = u.find(symbol=currency, sec_type="CASH", currency=base)
        if direct:
            return market.quote(direct[0].con_id).last
        inverse = u.find(symbol=base, sec_type="CASH", currency=currency)
        if inverse:
            return 1.0 / market.quote(inverse[0].con_id).last
        raise KeyError(f"no FX rate for {currency}{base}")

    def _mark(self, p: PositionState, market: SimMarket) -> tuple[float, float]:
        """(mark price, previous close) of a position's contract."""
        if market.universe.by_con_id(p.con_id) is None:
            # e.g. an expired option restored from an old state file: carry it at cost
            flat = p.avg_cost / p.multiplier if p.multiplier else p.avg_cost
            return flat, flat
        q = market.quote(p.con_id)
        return q.last, q.close

    def pnl_single(self, con_id: int, market: SimMarket) -> tuple[float, float, float, float, float]:
        """(position, daily P&L, unrealized P&L, realized P&L today, market value) in the contract's currency."""
        with self._lock:
            p = self._positions.get(con_id)
            if p is None:
                return 0.0, 0.0, 0.0, 0.0, 0.0
            self._roll_day(p, market.clock.now().astimezone(UTC).date().isoformat())
            price, prev_close = self._mark(p, market)
            value = p.position * price * p.multiplier
            unrealized = value - p.position * p.avg_cost
            # daily = value now − value of the start-of-day position at the previous close − today's flows
            daily = value - p.position_sod * prev_close * p.multiplier - p.day_flow
            return p.position, daily, unrealized, p.realized_today, value

    def pnl(self, market: SimMarket) -> tuple[float, float, float]:
        """(daily, unrealized, realized today) for the whole account, in the base currency."""
        daily = unrealized = realized = 0.0
        for con_id in list(self._positions):
            _, d, u, r, _ = self.pnl_single(con_id, market)
            rate = self.fx_rate(self._positions[con_id].currency, market)
            daily += d * rate
            unrealized += u * rate
            realized += r * rate
        return daily, unrealized, realized

    def _margins(self, p: PositionState, price: float, market: SimMarket) -> tuple[float, float]:
        value = abs(p.position * price * p.multiplier)
        if p.sec_type == "STK":
            return value * STK_INITIAL_MARGIN, value * STK_MAINT_MARGIN
        if p.sec_type == "FUT":
            c = market.universe.by_con_id(p.con_id)
            init, maint = FUTURES_MARGIN.get(c.symbol if c else "", DEFAULT_FUTURES_MARGIN)
            return abs(p.position) * init, abs(p.position) * maint
        if p.sec_type in ("OPT", "FOP"):
            if p.position >= 0:
                return 0.0, 0.0  # long options are paid in full
            c = market.universe.by_con_id(p.con_id)
            und = market.price(c.underlying_con_id) if c else price
            otm = max(0.0, (c.strike - und) if c and c.right == "C" else (und - c.strike) if c else 0.0)
            per = max(0.20 * und - otm, 0.10 * (c.strike if c else und)) + price
            return abs(p.position) * per * p.multiplier, abs(p.position) * per * p.multiplier
        if p.sec_type == "CASH":
            return value * FX_MARGIN, value * FX_MARGIN
        return 0.0, 0.0

    def values(self, market: SimMarket) -> dict[str, tuple[str, str]]:
        """Account values by IB tag → (value, currency), for accountSummary / updateAccountValue."""
        base = self.base_currency
        with self._lock:
            cash = sum(v * self.fx_rate(ccy, market) for ccy, v in self.cash.items())
            gross = stock = options = futures_pnl = init = maint = 0.0
            for p in self._positions.values():
                if p.position == 0:
                    continue
                rate = self.fx_rate(p.currency, market)
                price, _ = self._mark(p, market)
                value = p.position * price * p.multiplier * rate
                i, m = self._margins(p, price, market)
                init += i * rate
                maint += m * rate
                if p.sec_type == "FUT":
                    futures_pnl += value - p.position * p.avg_cost * rate
                    continue
                if p.sec_type == "CASH":
                    continue  # an FX position is the currencies' cash balances, already in `cash`
                gross += abs(value)
                if p.sec_type in ("OPT", "FOP"):
                    options += value
                else:
                    stock += value
        daily, unrealized, realized = self.pnl(market)
        net_liq = cash + stock + options + futures_pnl
        ewl = net_liq
        available = ewl - init
        excess = ewl - maint
        vals = {
            "NetLiquidation": net_liq, "TotalCashValue": cash, "SettledCash": cash, "AccruedCash": 0.0,
            "BuyingPower": max(available, 0.0) * 4.0, "AvailableFunds": available, "ExcessLiquidity": excess,
            "GrossPositionValue": gross, "StockMarketValue": stock, "OptionMarketValue": options,
            "FuturesPNL": futures_pnl, "UnrealizedPnL": unrealized, "RealizedPnL": realized, "DailyPnL": daily,
            "InitMarginReq": init, "MaintMarginReq": maint, "FullInitMarginReq": init,
            "FullMaintMarginReq": maint, "FullAvailableFunds": available, "FullExcessLiquidity": excess,
            "LookAheadInitMarginReq": init, "LookAheadMaintMarginReq": maint,
            "LookAheadAvailableFunds": available, "LookAheadExcessLiquidity": excess,
            "EquityWithLoanValue": ewl, "PreviousDayEquityWithLoanValue": ewl - daily,
            "Cushion": (excess / net_liq) if net_liq else 0.0,
            "Leverage-S": (gross / net_liq) if net_liq else 0.0,
        }
        out = {k: (_fmt(v) if k not in ("Cushion", "Leverage-S") else f"{v:.6f}", base) for k, v in vals.items()}
        out["AccountType"] = ("INDIVIDUAL", "")
        out["Currency"] = (base, base)
        out["DayTradesRemaining"] = ("-1", "")
        return out

