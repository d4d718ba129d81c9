"""Guards between a live signal and an order: what may be proposed, and what may be approved automatically.

Pure: `AutoExecGuard` keeps the counters (signals seen, last order per strategy and conId, orders per day) and
answers with a refusal reason or None. The approval itself still goes through trader_service's sizing, risk
gate and exactly-once path, exactly as a human approval does; these guards only decide whether to ask.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trader.config import StrategyEntry, TraderConfig
from trader.strategy.models import LiveSignal

# IB Gateway / TWS paper-trading ports, and 4004: the gateway container's forwarded paper port (docker-compose.yml).
PAPER_PORTS = frozenset({4002, 4004, 7497})


def is_live_account(config: TraderConfig) -> bool:
    """True when orders could reach a real-money account: broker ``ib`` with ``trading_mode: live``, or on a
    port that is not a paper port (whatever the mode says)."""
    return config.broker == "ib" and (config.trading_mode == "live" or config.ib_server_port not in PAPER_PORTS)


# A live account without a threshold of its own: approving a proposal above this notional needs the approver key.
LIVE_APPROVER_THRESHOLD_USD = 10_000.0


def approver_key_threshold(config: TraderConfig) -> float | None:
    """The notional (USD) above which ``approve`` needs the approver key, None = never.

    ``approver_key_threshold_usd`` when it is set (> 0); on a live account an unset one (0) is
    LIVE_APPROVER_THRESHOLD_USD, so live trading always has one — whether live came from ``mmr setup --live``,
    docker's ``TRADING_MODE=live`` or a hand-edited trader.yaml. A larger value raises it; it cannot be turned off
    on a live account."""
    if config.approver_key_threshold_usd > 0:
        return config.approver_key_threshold_usd
    return LIVE_APPROVER_THRESHOLD_USD if is_live_account(config) else None


def live_refusal(entry: StrategyEntry, source_hash: str) -> str | None:
    """Why ``entry`` may not auto-execute on a live account (None: it may): paper_only, no second opt-in
    (``live_trading``), or neither a passing validation of this exact source (``validated_hash``) nor ``forced``."""
    if entry.paper_only:
        return "paper_only strategy and the broker is a live account: never auto-executed"
    if not entry.live_trading:
        return "live account: auto-execution needs the second opt-in (deploy --live-trading)"
    if entry.forced:
        return None
    if not entry.validated_hash:
        return "live account: no passing `backtests validate` record for this strategy's source (or deploy --force)"
    if entry.validated_hash != source_hash:
        return (f"live account: the file changed since it was validated (validated {entry.validated_hash[:12]}, "
                f"running {source_hash[:12]}): validate again or deploy --force")
    return None


@dataclass
class AutoExecGuard:
    """One per strategy_service; ``kill_switch`` is re-read from the config on every reconcile."""

    kill_switch: bool
    live_account: bool
    stale_bars: float = 3.0
    seen: set[str] = field(default_factory=set)
    last_order: dict[tuple[str, int], datetime] = field(default_factory=dict)
    orders_today: dict[tuple[str, str], int] = field(default_factory=dict)

    def propose_refusal(self, sig: LiveSignal, now: datetime, bar_seconds: int) -> str | None:
        """Why this signal must not become a proposal at all (None: propose it). Marks it seen."""
        if sig.warmup:
            return "warm-up signal (decided on history)"
        if sig.signal_id in self.seen:
            return "duplicate signal (one per strategy, conId and bar)"
        self.seen.add(sig.signal_id)
        age = (now - sig.bar_time).total_seconds() - bar_seconds  # since the bar closed
        if sig.target != 0 and age > self.stale_bars * bar_seconds:
            return f"stale bar ({age:.0f} s after its close): stale bars never open positions"
        return None

    def approve_refusal(self, entry: StrategyEntry, sig: LiveSignal, now: datetime, *, opening: bool,
                        position: float, quantity: float, source_hash: str = "",
                        orders_today: int | None = None) -> str | None:
        """Why a proposal from this signal must wait for a person (None: approve it automatically).
        ``source_hash``: the running strategy file's (`live_refusal`); ``position`` and ``orders_today``: the
        strategy's from its fills and orders in flight (`CapBook`); without ``orders_today`` the approvals this
        guard counted (`note_order`)."""
        if not entry.auto_execute:
            return "auto_execute is off for this strategy: the proposal waits for approval"
        if self.kill_switch:
            return "kill switch on (strategy_kill_switch / STRATEGY_KILL_SWITCH): no auto-execution"
        if self.live_account:
            why = live_refusal(entry, source_hash)
            if why is not None:
                return why
        key = (entry.name, sig.con_id)
        last = self.last_order.get(key)
        if entry.cooldown_seconds and last is not None and (now - last).total_seconds() < entry.cooldown_seconds:
            return f"cooldown: last order {(now - last).total_seconds():.0f} s ago (< {entry.cooldown_seconds:g} s)"
        day = (entry.name, now.date().isoformat())
        count = self.orders_today.get(day, 0) if orders_today is None else orders_today
        if count >= entry.max_orders_per_day:
            return f"max_orders_per_day {entry.max_orders_per_day} reached"
        if opening and entry.max_position and abs(position) + quantity > entry.max_position:
            return f"max_position {entry.max_position:g}: {abs(position):g} held + {quantity:g} would exceed it"
        return None

    def note_order(self, entry: StrategyEntry, sig: LiveSignal, now: datetime) -> None:
        """Count an approval that was sent (cooldown and the per-day cap)."""
        self.last_order[(entry.name, sig.con_id)] = now
        day = (entry.name, now.date().isoformat())
        self.orders_today[day] = self.orders_today.get(day, 0) + 1


INFLIGHT_SECONDS = 120.0  # an approved order without a fill counts toward the caps this long (then it is stale)


@dataclass
class CapBook:
    """Per-strategy caps from what actually filled: the position per (strategy, conId) is the sum of its
    attributed fills, the orders of a day are its distinct orders with a fill that day (UTC). An order approved
    but not filled yet is *in flight* and counts too (its quantity and as an order), so a burst of signals cannot
    pass a cap before its fills arrive; it stops counting at its first fill or after `INFLIGHT_SECONDS`."""

    fills: list[Any] = field(default_factory=list)  # `attribution.StrategyFill`s
    inflight: dict[int, tuple[str, int, float, datetime]] = field(default_factory=dict)  # proposal id → …

    def update(self, fills: list[Any], now: datetime) -> None:
        """Take the latest attributed fills; drop in-flight orders that filled or went stale."""
        self.fills = fills
        filled = {f.proposal_id for f in fills}
        cutoff = now - timedelta(seconds=INFLIGHT_SECONDS)
        self.inflight = {pid: v for pid, v in self.inflight.items() if pid not in filled and v[3] >= cutoff}

    def sent(self, proposal_id: int, strategy: str, con_id: int, signed: float, now: datetime) -> None:
        """An approval went out: in flight until its first fill."""
        self.inflight[int(proposal_id)] = (strategy, int(con_id), float(signed), now)

    def position(self, strategy: str, con_id: int, *, with_inflight: bool = True) -> float:
        """Signed shares from fills (plus in-flight orders)."""
        held = sum(f.signed for f in self.fills if f.strategy == strategy and f.con_id == con_id)
        if with_inflight:
            held += sum(q for s, c, q, _ in self.inflight.values() if s == strategy and c == con_id)
        return held

    def orders_on(self, strategy: str, day: str) -> int:
        """Orders with a fill on ``day`` (ISO date, UTC), plus those in flight."""
        from trader.strategy.attribution import fill_day

        filled = {f.proposal_id for f in self.fills if f.strategy == strategy and str(fill_day(f.time)) == day}
        return len(filled) + sum(1 for s, *_ in self.inflight.values() if s == strategy)
