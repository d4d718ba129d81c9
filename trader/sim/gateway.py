"""The simulated IB Gateway: an asyncio TWS-API server backed by SIM-CORE (market, matching engine, account).

An unmodified ``ib_async.IB()`` connects to it as to a real IB Gateway. One ``ClientSession`` per socket
parses requests (trader/sim/protocol.py) and keeps that client's subscriptions; the ``SimGateway`` owns the
simulated exchange, routes engine events to the client that owns each order, and runs the tick loop
(matching, streaming quotes, P&L, real-time bars, depth). Faults: trader/sim/faults.py.

Run it: ``mmr-sim-gateway --port 4012 --state-dir ~/.mmr/sim`` (SIGTERM/SIGINT → clean stop, state saved).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from trader.sim import protocol as P
from trader.sim import replies as R
from trader.sim.account import SimAccount
from trader.sim.clock import SimClock
from trader.sim.combo_matching import BAG_CON_ID
from trader.sim.contracts import ContractUniverse
from trader.sim.faults import FaultController, serve_admin
from trader.sim.gateway_session import ClientSession
from trader.sim.market import SimMarket, model_spot
from trader.sim.matching import MatchingEngine
from trader.sim.models import (
    CommissionEvent,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    SimContract,
    SimEvent,
    SimOrder,
)
from trader.sim.replay import ReplayError, ReplayFeed, parse_start

log = logging.getLogger(__name__)

ACCOUNT_REFRESH_S = 3.0  # how often subscribed clients get portfolio/account values re-marked
SAVE_EVERY_S = 2.0  # state is also saved on every stop


class SimGateway:
    """The TWS-API server. ``await start()``; ``.port`` is the bound port (pass 0 for an ephemeral one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4012, *, state_dir: Path, seed: int = 42,
                 clock: SimClock | None = None, calendar: str = "24x7", tick_interval: float = 0.25,
                 account_id: str = "DU0000001", starting_cash: float = 1_000_000,
                 admin_port: int | None = None, universe: ContractUniverse | None = None,
                 max_fill_fraction_of_size: float = 1.0, replay: ReplayFeed | None = None) -> None:
        self.host = host
        self.port = port
        self.admin_port = admin_port
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tick_interval = tick_interval
        self.clock = clock or SimClock()
        # option ladders centre on the model's price on the clock's day (they follow the market)
        self.universe = universe or ContractUniverse.load(spot=model_spot(seed, self.clock.now().date()))
        self.market = SimMarket(self.universe, self.clock, seed, calendar=calendar, replay=replay)
        account_path = self.state_dir / "account.json"
        if account_path.exists():
            self.account = SimAccount.restore(account_path)
        else:
            self.account = SimAccount(account_id, float(starting_cash), state_path=account_path)
        self.account_id = self.account.account_id
        self.engine = MatchingEngine(self.universe, self.market, self.account,
                                     state_path=self.state_dir / "orders.json",
                                     max_fill_fraction_of_size=max_fill_fraction_of_size)
        self.faults = FaultController(self)
        self.sessions: dict[int, ClientSession] = {}  # by clientId, once startApi arrived
        self._all_sessions: set[ClientSession] = set()
        self._server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self._tick_task: asyncio.Task | None = None
        self._exec_owner: dict[str, int] = {}  # execId → clientId (routes commission reports)
        self._wire_cache: dict[int, P.WireContract] = {}
        self._what_if_ids: dict[int, int] = {}  # clientId → highest whatIf order id (IB counts those too)
        self._last_account_push = 0.0
        self._last_save = 0.0
        self._dirty = False
        self._refusing = False
        self._reopen_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen, start the tick loop (and the admin port when configured)."""
        await self._listen()
        if self.admin_port is not None:
            self._admin = await serve_admin(self.faults, "127.0.0.1", self.admin_port)
            self.admin_port = self._admin.sockets[0].getsockname()[1]
        self._tick_task = asyncio.get_running_loop().create_task(self._tick_loop())
        log.info("sim gateway listening on %s:%s (account %s)", self.host, self.port, self.account_id)

    async def __aenter__(self) -> SimGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection, stop the loops and save state."""
        if self._reopen_handle:
            self._reopen_handle.cancel()
        for server in (self._server, self._admin):
            if server is not None:
                server.close()
        if self._tick_task:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        for s in list(self._all_sessions):
            s.close()
        for s in list(self._all_sessions):
            await s.wait_closed()
        for server in (self._server, self._admin):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)
        self.save()

    def save(self) -> None:
        """Persist account and orders (atomic writes inside SIM-CORE)."""
        self.account.save()
        self.engine.save()
        self._dirty = False
        self._last_save = time.monotonic()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.close()
            return
        session = ClientSession(self, reader, writer)
        self._all_sessions.add(session)
        try:
            await session.run()
        finally:
            self._all_sessions.discard(session)
            if self.sessions.get(session.client_id) is session:
                del self.sessions[session.client_id]

    def register(self, session: ClientSession) -> bool:
        """Claim a clientId for a session (False when another live session holds it: IB error 326)."""
        if session.client_id in self.sessions:
            return False
        self.sessions[session.client_id] = session
        return True

    def next_order_id(self, client_id: int) -> int:
        """nextValidId for a client: above every order id it has used (open, completed or whatIf)."""
        ids = [o.order_id for o in self._orders() if o.client_id == client_id]
        return max(ids + [self._what_if_ids.get(client_id, 0)], default=0) + 1

    def note_what_if(self, client_id: int, order_id: int) -> None:
        """A whatIf preview used ``order_id``: the next nextValidId must skip it, as IB's does."""
        self._what_if_ids[client_id] = max(self._what_if_ids.get(client_id, 0), order_id)

    def _orders(self) -> list[SimOrder]:
        return list(self.engine.open_orders()) + list(self.engine.completed_orders())

    # ------------------------------------------------------------------ contracts
    def wire(self, c: SimContract) -> P.WireContract:
        """A SimContract as the reply builders carry it (cached per conId)."""
        w = self._wire_cache.get(c.con_id)
        if w is None:
            w = P.WireContract(
                con_id=c.con_id, symbol=c.symbol, sec_type=c.sec_type, last_trade_date=c.last_trade_date,
                strike=c.strike, right=c.right, multiplier=c.multiplier, exchange=c.exchange,
                primary_exchange=c.primary_exchange, currency=c.currency, local_symbol=c.local_symbol,
                trading_class=c.trading_class)
            self._wire_cache[c.con_id] = w
        return w

    def resolve(self, spec: P.ContractSpec) -> list[SimContract]:
        """Contracts matching a client's (partial) description, IB semantics (conId wins)."""
        if spec.con_id:
            c = self.universe.by_con_id(spec.con_id)
            return [c] if c is not None else []
        return self.universe.find(
            symbol=spec.symbol, sec_type=spec.sec_type, exchange=spec.exchange, currency=spec.currency,
            last_trade_date=spec.last_trade_date, strike=spec.strike, right=spec.right,
            local_symbol=spec.local_symbol, trading_class=spec.trading_class, multiplier=spec.multiplier)

    # ------------------------------------------------------------------ orders
    def place(self, order: SimOrder) -> None:
        """Hand an order (new or modify) to the engine and route what comes back, fills included."""
        events = list(self.engine.place(order))
        events += self.engine.on_time(self.clock.now())  # marketable orders fill now, not next tick
        self.dispatch(events)

    def cancel(self, client_id: int, order_id: int) -> None:
        """cancelOrder from a client."""
        self.dispatch(self.engine.cancel(order_id, client_id))

    def global_cancel(self) -> None:
        """reqGlobalCancel: every open order of every client."""
        self.dispatch(self.engine.global_cancel())

    def wire_order(self, o: SimOrder, *, what_if: bool = False, margin: tuple[str, ...] = (),
                   commission: float | None = None) -> P.WireOrder:
        """A SimOrder as openOrder/completedOrder carry it."""
        c = self.universe.by_con_id(o.con_id)
        done = o.status in ("Filled", "Cancelled", "ApiCancelled", "Inactive")
        return P.WireOrder(
            order_id=o.order_id, client_id=o.client_id, perm_id=o.perm_id, action=o.action,
            total_quantity=o.total_quantity, order_type=o.order_type, lmt_price=o.lmt_price,
            aux_price=o.aux_price, tif=o.tif, oca_group=o.oca_group, account=o.account or self.account_id,
            order_ref=o.order_ref, outside_rth=o.outside_rth, parent_id=o.parent_id, oca_type=o.oca_type,
            trail_stop_price=o.trail_stop_price, trailing_percent=o.trailing_percent,
            lmt_price_offset=o.lmt_price_offset, status=o.status, filled=o.filled,
            commission=commission if commission is not None else (o.commission or None),
            commission_currency=c.currency if c else "USD",
            completed_time=P.ib_time(o.completed_time) if (done and o.completed_time) else "",
            completed_status=o.completed_status or (o.status if done else ""),
            what_if=what_if, margin=margin,
            combo_legs=tuple((int(i), int(r), a, (o.extra.get("combo") or {}).get("exchange", "SMART"))
                             for i, r, a in (o.extra.get("combo") or {}).get("legs", ())))

    def order_contract(self, o: SimOrder) -> P.WireContract | None:
        """The contract openOrder/completedOrder carry for an order: its own, or a combo's BAG contract."""
        combo = o.extra.get("combo")
        if combo:
            return P.WireContract(con_id=BAG_CON_ID, symbol=combo.get("symbol", ""), sec_type="BAG",
                                  exchange=combo.get("exchange") or "SMART", currency=combo.get("currency") or "USD")
        c = self.universe.by_con_id(o.con_id)
        return self.wire(c) if c is not None else None

    def execution_contract(self, ev: ExecutionEvent) -> P.WireContract | None:
        """The contract execDetails carry: the leg's, or for a combo's own execution its BAG contract."""
        if ev.con_id == BAG_CON_ID:
            o = self.engine.order(ev.order_id, ev.client_id)
            return self.order_contract(o) if o is not None else None
        c = self.universe.by_con_id(ev.con_id)
        return self.wire(c) if c is not None else None

    def dispatch(self, events: Iterable[SimEvent]) -> None:
        """Turn engine events into TWS messages for the owning client; push account changes."""
        changed: set[int] = set()
        for ev in events:
            if isinstance(ev, (OpenOrderEvent, OrderStatusEvent)):
                s = self.sessions.get(ev.order.client_id)
                if s is not None:
                    s.send_order(ev.order, status_only=isinstance(ev, OrderStatusEvent))
            elif isinstance(ev, ExecutionEvent):
                self._exec_owner[ev.exec_id] = ev.client_id
                changed.add(ev.con_id)
                self._dirty = True
                s = self.sessions.get(ev.client_id)
                if s is not None:
                    s.send_execution(-1, ev)
            elif isinstance(ev, CommissionEvent):
                delay = self.faults.commission_delay_s
                if delay > 0:
                    asyncio.get_running_loop().call_later(delay, self._send_commission, ev)
                else:
                    self._send_commission(ev)
            elif isinstance(ev, OrderErrorEvent):
                s = self.sessions.get(ev.client_id)
                if s is not None:
                    s.send(R.error_msg(ev.order_id, ev.code, ev.message))
        if changed:
            for s in self.sessions.values():
                s.push_account(changed)

    def _send_commission(self, ev: CommissionEvent) -> None:
        s = self.sessions.get(self._exec_owner.get(ev.exec_id, -1))
        if s is not None:
            s.send(R.commission_report(ev.exec_id, ev.commission, ev.currency, ev.realized_pnl))

    # ------------------------------------------------------------------ fault hooks (GatewayHooks)
    def drop_connections(self) -> int:
        """Abort every client socket."""
        n = 0
        for s in list(self._all_sessions):
            s.abort()
            n += 1
        self.sessions.clear()
        return n

    def refuse_connections_for(self, seconds: float) -> None:
        """Close the listening socket now; listen again on the same port after `seconds`."""
        if self._server is not None:
            self._server.close()
        self._refusing = True
        loop = asyncio.get_running_loop()

        def reopen() -> None:
            self._refusing = False
            loop.create_task(self._listen())

        if self._reopen_handle:
            self._reopen_handle.cancel()
        self._reopen_handle = loop.call_later(seconds, reopen)

    def broadcast_error(self, code: int, message: str) -> None:
        """An IB system message (reqId -1) to every connected client."""
        for s in list(self.sessions.values()):
            s.send(R.error_msg(-1, code, message))

    def market_data_error(self, code: int, message: str) -> int:
        """An error on every live reqMktData subscription (its reqId), as IB reports 10197; returns how many."""
        n = 0
        for s in list(self.sessions.values()):
            for req_id in list(s.mkt):
                s.send(R.error_msg(req_id, code, message))
                n += 1
        return n

    def clear_market_subscriptions(self) -> None:
        """Drop every streaming market-data subscription (what 1101 'data lost' means)."""
        for s in self.sessions.values():
            s.clear_market_subscriptions()

    def correct_execution(self, exec_id: str | None) -> str:
        """Re-issue an execution as ….02 and route it."""
        if not exec_id:
            execs = self.engine.executions()
            if not execs:
                raise ValueError("no execution to correct")
            exec_id = execs[-1].exec_id
        events = self.engine.correct_execution(exec_id)
        self.dispatch(events)
        new = [e.exec_id for e in events if isinstance(e, ExecutionEvent)]
        return new[0] if new else exec_id

    def reject_next_order(self, code: int, message: str, skip: int = 0) -> None:
        """The engine rejects the next placeOrder with this code (after letting ``skip`` orders through)."""
        self.engine.reject_next(code, message, skip)

    # ------------------------------------------------------------------ tick loop
    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.step()
            except Exception:  # one bad tick must not stop the exchange
                log.exception("sim gateway tick failed")

    def step(self) -> None:
        """One tick: match orders, stream market data, P&L, bars, periodic account marks, save."""
        now = self.clock.now()
        self.dispatch(self.engine.on_time(now))
        mono = time.monotonic()
        if not self.faults.market_data_paused():
            quotes: dict = {}
            for s in list(self.sessions.values()):
                s.push_market_data(now, quotes)
        refresh = mono - self._last_account_push >= ACCOUNT_REFRESH_S
        if refresh:
            self._last_account_push = mono
        for s in list(self.sessions.values()):
            s.push_pnl()
            if refresh:
                s.push_account(None)
        if self._dirty and mono - self._last_save >= SAVE_EVERY_S:
            self.save()

    def history_allowed(self) -> bool:
        """Pacing fault check for one historical request."""
        return self.faults.history_request_allowed()


# ---------------------------------------------------------------------- entry point
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mmr-sim-gateway", description="MMR's simulated IB Gateway (TWS API)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4012, help="TWS API port (default 4012)")
    p.add_argument("--state-dir", type=Path, default=Path.home() / ".mmr" / "sim",
                   help="where account and orders persist")
    p.add_argument("--seed", type=int, default=42, help="market seed (prices are a function of it)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("--calendar", default="24x7", help="'24x7' (default) or 'exchange' to follow real hours")
    p.add_argument("--admin-port", type=int, default=None, help="localhost JSON-lines fault-injection port")
    p.add_argument("--replay", action="store_true",
                   help="drive the market from bars stored in the DuckDB bar store (sim_source: replay); "
                        "contracts without stored bars keep the seeded model")
    p.add_argument("--replay-start", default="", help="replay start, ISO date/time (naive = UTC; default: the "
                                                        "first bar of the most recent stored day)")
    p.add_argument("--replay-speed", type=float, default=None,
                   help="simulated seconds per wall second while replaying (default: --speed)")
    p.add_argument("--bars-dir", type=Path, default=None,
                   help="data directory holding bars.duckdb (default: MMR's data dir)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--faults", action="store_true", help="print the catalogue of injectable faults and exit")
    return p.parse_args(argv)


def replay_setup(bars_dir: Path, start: str = "", speed: float = 1.0,
                 universe: ContractUniverse | None = None) -> tuple[ReplayFeed, SimClock, ContractUniverse]:
    """The replay feed of `bars_dir`'s bar store and a clock at its start (ReplayError when nothing is stored)."""
    from trader.data.bars import BarStore

    universe = universe or ContractUniverse.load()
    if not (Path(bars_dir) / "bars.duckdb").exists():
        raise ReplayError(f"no bar store at {Path(bars_dir) / 'bars.duckdb'}: download history first "
                          "(`mmr history ib` or `mmr history massive`)")
    feed = ReplayFeed.from_store(BarStore.open(bars_dir), universe)
    if not len(feed):
        raise ReplayError(f"{Path(bars_dir) / 'bars.duckdb'} holds no intraday bars for any contract of the "
                          "simulator's universe: download some (e.g. 1 min bars) first")
    when = parse_start(start) if start else feed.default_start(universe)
    symbols = sorted(c.symbol for cid in feed.con_ids if (c := universe.by_con_id(cid)) is not None)
    log.info("replaying %s from %s at %gx; other contracts follow the seeded model",
             ", ".join(symbols), when.isoformat(), speed)
    return feed, SimClock(start=when, speed=speed), universe


async def _serve(args: argparse.Namespace) -> None:
    replay = universe = None
    clock = SimClock(speed=args.speed)
    if args.replay:
        bars_dir = args.bars_dir
        if bars_dir is None:
            from trader.config import mmr_paths

            bars_dir = mmr_paths().data_dir
        replay, clock, universe = replay_setup(bars_dir, args.replay_start, args.replay_speed or args.speed)
    gw = SimGateway(args.host, args.port, state_dir=args.state_dir, seed=args.seed, clock=clock,
                    calendar=args.calendar, admin_port=args.admin_port, universe=universe, replay=replay)
    await gw.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("sim gateway stopping")
    await gw.stop()


def main(argv: list[str] | None = None) -> int:
    """Console script ``mmr-sim-gateway``."""
    args = _parse_args(argv)
    if args.faults:
        from trader.sim.faults import fault_catalogue_text

        print(fault_catalogue_text())
        return 0
    try:  # same logging as the services: Rich console + rotating file under the MMR log dir
        from trader.config import mmr_paths
        from trader.logging_setup import setup_logging

        setup_logging("sim_gateway", mmr_paths().ensure(), args.log_level)
    except Exception:  # a broken logging.yaml must not stop the gateway
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve(args))
    except ReplayError as exc:
        log.error("cannot replay: %s", exc)
        return 2
    except OSError as exc:
        from trader.ports import PORT_IN_USE_MARK, is_addr_in_use, port_in_use_error

        if not is_addr_in_use(exc):
            raise
        # The same clear line the services write, so `mmr up` can say what holds the port.
        log.error("%s %s", PORT_IN_USE_MARK, port_in_use_error(args.port, "sim_gateway_port"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

