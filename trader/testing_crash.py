"""kill -9 harness for trader_service: seeded order actions, SIGKILL at random points, restart, invariants.

One round: create proposals, launch ``mmr --json approve/buy/sell`` subprocesses (each with its own
``--request-id``), SIGKILL trader_service after a seeded delay (sometimes with the simulated gateway delaying
its replies, so the kill lands between placement and the answer), sometimes place a *foreign* order at the
broker while trader_service is dead (its fill happens while nobody records it), restart trader_service, wait
until reconciliation has settled every open intent and APPROVED proposal, retry every command with the same
request id, and check the invariants against the broker's own truth (a separate ib_async connection to the
simulated gateway: open + completed orders and executions):

- no proposal stays APPROVED; every EXECUTED proposal has order ids, each an order at the broker with
  orderRef ``proposal-<id>``; a FAILED/REJECTED/EXPIRED/PENDING proposal has no broker order with its ref;
- every broker order with an MMR orderRef has an ``order_placed`` (or ``order_adopted``) record, every foreign
  order an ``order_adopted`` record; every broker execution has a row in ``fills`` and in ``trades``, and
  neither has an execution the broker does not;
- nothing placed twice: per orderRef at most one order (a bracket: three legs) and no more shares executed
  than asked for; no intent left open; a retry with the same request id answers with the recorded outcome;
- at most one ``fill`` (new) and one ``commission`` event per exec id (corrections aside): nothing is logged
  again by a restart.

Used by ``tests/reliability/test_crash_recovery.py`` (a few kills, in CI) and ``bench/reliability_crash.py``
(the soak). Everything runs in a temp ``MMR_HOME`` on free ports (`trader.testing.Platform`).
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trader.testing import Platform, platform_env

__all__ = ["BrokerTruth", "CrashHarness", "CrashStats", "FILTERS", "restart_service", "gateway_fault"]

# Limits wide enough that the gate never refuses what the harness does (refusals are fine, but rare is better).
FILTERS = """\
max_position_value_usd: 10000000.0
max_position_pct_nlv: 100.0
max_daily_loss_usd: 10000000.0
max_open_orders: 1000
max_orders_per_window: 100000
order_window_seconds: 300
allow_extended_hours: true
"""

FOREIGN_PREFIX = "ext-"
TRUTH_CLIENT_ID = 907
SYMBOLS = ("AAPL", "MSFT")


@dataclass
class Action:
    """One order command the harness runs (and retries) through the CLI."""

    kind: str  # approve | buy | sell | limit | bracket
    args: list[str]
    request_id: str
    order_ref: str
    quantity: float
    legs: int = 1
    proc: subprocess.Popen | None = None
    first: dict[str, Any] | None = None


@dataclass
class CrashStats:
    """What a run did and found."""

    seed: int = 0
    rounds: int = 0
    kills: int = 0
    kills_mid_action: int = 0  # the kill left an open intent or an APPROVED proposal behind
    actions: int = 0
    first_attempt_unknown: int = 0  # the first attempt ended OutcomeUnknown / no answer (the CLI's view)
    retries: int = 0
    faults_injected: int = 0
    foreign_orders: int = 0  # placed at the broker while trader_service was dead
    proposals_executed: int = 0
    proposals_failed: int = 0
    broker_orders: int = 0
    broker_executions: int = 0
    intents_recovered: int = 0
    invariant_checks: int = 0
    violations: list[str] = field(default_factory=list)
    double_executions: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}


# ---------------------------------------------------------------------------------------------- the broker's truth
@dataclass
class BrokerTruth:
    """Every order (open and completed, by permId) and execution the simulated gateway reports."""

    orders: dict[int, dict[str, Any]]
    executions: dict[str, dict[str, Any]]

    def orders_for(self, ref: str) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["order_ref"] == ref]

    def executed_shares(self, ref: str) -> float:
        return sum(e["shares"] for e in self.executions.values() if e["order_ref"] == ref and e["parent"])


class BrokerView:
    """A separate ib_async connection to the gateway (its own clientId): reads the truth, places foreign orders."""

    def __init__(self, port: int, client_id: int = TRUTH_CLIENT_ID) -> None:
        from ib_async import IB

        self.ib = IB()
        self.ib.connect("127.0.0.1", port, clientId=client_id, timeout=10)

    def close(self) -> None:
        self.ib.disconnect()

    def truth(self) -> BrokerTruth:
        ib = self.ib
        trades = list(ib.reqAllOpenOrders()) + list(ib.reqCompletedOrders(False))
        orders: dict[int, dict[str, Any]] = {}
        for t in trades:
            o = t.order
            perm = int(o.permId or t.orderStatus.permId or 0)
            if not perm:
                continue
            orders[perm] = {"order_id": int(o.orderId), "perm_id": perm, "order_ref": o.orderRef or "",
                            "parent_id": int(o.parentId or 0), "quantity": float(o.totalQuantity),
                            "symbol": t.contract.symbol}
        parents = {perm for perm, o in orders.items() if not o["parent_id"]}
        executions = {}
        fills = ib.reqExecutions()
        for f in fills:  # completed orders carry no order id (as in IB's API): their executions do
            ex = f.execution
            if int(ex.permId) in orders and not orders[int(ex.permId)]["order_id"]:
                orders[int(ex.permId)]["order_id"] = int(ex.orderId)
        for f in fills:
            ex = f.execution
            executions[ex.execId] = {"exec_id": ex.execId, "order_id": int(ex.orderId), "perm_id": int(ex.permId),
                                     "order_ref": ex.orderRef or "", "shares": float(ex.shares),
                                     "parent": int(ex.permId) in parents or int(ex.permId) not in orders}
        return BrokerTruth(orders, executions)

    def place_foreign(self, symbol: str, ref: str, timeout: float = 10.0) -> None:
        """A 1-share market BUY placed outside MMR (another client); waits until it has filled."""
        from ib_async import MarketOrder, Stock

        contract = self.ib.qualifyContracts(Stock(symbol, "SMART", "USD"))[0]
        trade = self.ib.placeOrder(contract, MarketOrder("BUY", 1, orderRef=ref))
        deadline = time.monotonic() + timeout
        while not trade.isDone() and time.monotonic() < deadline:
            self.ib.sleep(0.05)
        if trade.orderStatus.status != "Filled":
            raise RuntimeError(f"foreign order {ref} did not fill: {trade.orderStatus.status}")


def gateway_fault(p: Platform, fault: str, **kwargs: Any) -> dict[str, Any]:
    """Send one fault command to the simulated gateway's admin port (see `trader.sim.faults`)."""
    with socket.create_connection(("127.0.0.1", int(p.env["SIM_ADMIN_PORT"])), timeout=5) as s:
        s.sendall((json.dumps({"fault": fault, **kwargs}) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf or b"{}")


# ---------------------------------------------------------------------------------------------- process control
def wait_ping(p: Platform, service: str = "trader_service", timeout: float = 30.0) -> None:
    """Wait until ``service`` answers ping (fails fast if it exits)."""
    from trader.errors import Unauthenticated

    deadline = time.monotonic() + timeout
    with p.client(service, timeout=0.5) as client:
        while time.monotonic() < deadline:
            if p.procs[service].poll() is not None:
                raise RuntimeError(f"{service} exited during restart (see {p.home}/{service}.restarts.stdout)")
            try:
                if client.rpc().ping() == "pong":
                    return
            except (TimeoutError, Unauthenticated):
                time.sleep(0.02)
    raise RuntimeError(f"{service} did not answer ping within {timeout} s after a restart")


def restart_service(p: Platform, service: str = "trader_service", *, broker_ready: bool = True) -> None:
    """Start ``service`` again the way `Platform.start` does (output appended to ``<service>.restarts.stdout``)
    and wait until it answers (and, for trader_service, until its broker session is ready and reconciled)."""
    with open(p.home / f"{service}.restarts.stdout", "ab") as out:
        p.procs[service] = subprocess.Popen([sys.executable, "-m", f"trader.{service}"], env=p.env, stdout=out,
                                            stderr=subprocess.STDOUT)
    wait_ping(p, service)
    if broker_ready and service == "trader_service":
        p.wait_broker_ready()


def kill9(p: Platform, service: str = "trader_service") -> None:
    proc = p.procs[service]
    proc.kill()
    proc.wait(timeout=10)


def _parse(out: str) -> dict[str, Any] | list | None:
    lines = out.strip().splitlines()
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------- the harness
class CrashHarness:
    """Start an isolated platform with the simulated gateway and run seeded kill -9 rounds against it."""

    def __init__(self, home: Path, seed: int, *, order_timeout: float = 4.0, kill_window: tuple[float, float] =
                 (0.15, 0.9), fault_rate: float = 0.3, foreign_rate: float = 0.4,
                 log: Callable[[str], None] | None = None) -> None:
        """``kill_window``: the kill comes this many seconds (uniform) after the round's commands were launched
        (a CLI subprocess needs ~0.3 s to reach the service); ``fault_rate``: share of rounds in which the
        gateway delays its replies; ``foreign_rate``: share of rounds with a foreign order while dead."""
        self.home = home
        self.rng = random.Random(seed)
        self.stats = CrashStats(seed=seed)
        self.order_timeout = order_timeout
        self.kill_window = kill_window
        self.fault_rate = fault_rate
        self.foreign_rate = foreign_rate
        self.log = log or (lambda _msg: None)
        self.actions: list[Action] = []
        self.foreign_refs: list[str] = []
        self.p: Platform | None = None
        self.view: BrokerView | None = None
        self.prices: dict[str, float] = {}
        self._rid = 0

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> CrashHarness:
        (self.home / "config").mkdir(parents=True, exist_ok=True)
        (self.home / "config" / "trading_filters.yaml").write_text(FILTERS)
        env = platform_env(self.home)
        env["MMR_ORDER_TIMEOUT"] = str(self.order_timeout)
        self.p = Platform(self.home, env, with_gateway=True)
        try:
            t0 = time.monotonic()
            self.p.start()
            self.p.wait_broker_ready()
            t1 = time.monotonic()
            self.view = BrokerView(self.p.gateway_port)
            self.log(f"platform up in {t1 - t0:.1f} s, broker view in {time.monotonic() - t1:.1f} s")
            with self.p.client("trader_service", timeout=10) as c:
                for s in SYMBOLS:
                    q = c.rpc().snapshot(s)
                    self.prices[s] = float(q.get("last") or q.get("ask") or q.get("bid"))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for a in self.actions:
            if a.proc is not None and a.proc.poll() is None:
                a.proc.kill()
                a.proc.wait()
        if self.view is not None:
            self.view.close()
        if self.p is not None:
            self.p.stop()

    # -------------------------------------------------------------- one round
    def _new_rid(self, kind: str) -> str:
        self._rid += 1
        return f"crash-{self.stats.seed}-{self._rid}-{kind}"

    def _make_actions(self) -> list[Action]:
        out = []
        with self.p.client("trader_service", timeout=10) as c:
            for _ in range(self.rng.randint(2, 4)):
                kind = self.rng.choices(("approve", "buy", "sell", "limit", "bracket"), (4, 3, 1, 1, 1))[0]
                sym = self.rng.choice(SYMBOLS)
                qty = float(self.rng.randint(1, 3))
                rid = self._new_rid(kind)
                px = self.prices[sym]
                if kind == "approve":
                    prop = c.rpc().propose(sym, "BUY", quantity=qty)
                    out.append(Action(kind, ["approve", str(prop["id"]), "--request-id", rid], rid,
                                      f"proposal-{prop['id']}", qty))
                    continue
                args = ["buy" if kind != "sell" else "sell", sym, "--quantity", f"{qty:g}", "--request-id", rid]
                if kind == "limit":
                    args += ["--limit", f"{px * 0.7:.2f}"]  # rests: an open order at the broker
                if kind == "bracket":
                    args += ["--bracket", f"{px * 1.5:.2f}", f"{px * 0.5:.2f}"]
                out.append(Action(kind, args, rid, rid, qty, legs=3 if kind == "bracket" else 1))
        return out

    def _launch(self, a: Action) -> None:
        a.proc = subprocess.Popen([sys.executable, "-m", "trader.mmr_cli", "--json", *a.args], env=self.p.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def round(self) -> None:
        """One kill: launch commands, SIGKILL trader_service, maybe trade behind its back, restart, check."""
        n = self.stats.rounds + 1
        actions = self._make_actions()
        self.actions += actions
        self.stats.actions += len(actions)
        fault = self.rng.random() < self.fault_rate
        if fault:
            gateway_fault(self.p, "delay_replies", ms=self.rng.uniform(100, 500))
            self.stats.faults_injected += 1
        for a in actions:
            self._launch(a)
        mode, delay = self._kill_point(actions)
        kill9(self.p)
        self.stats.kills += 1
        if fault:
            gateway_fault(self.p, "delay_replies", ms=0)
        open_intents, approved = self._open_counts()
        if open_intents or approved:
            self.stats.kills_mid_action += 1
        if self.rng.random() < self.foreign_rate:
            ref = f"{FOREIGN_PREFIX}{self.stats.seed}-{n}"
            self.view.place_foreign(self.rng.choice(SYMBOLS), ref)
            self.foreign_refs.append(ref)
            self.stats.foreign_orders += 1
        self.log(f"round {n}: {[a.kind for a in actions]} killed {delay * 1000:.0f} ms after {mode} "
                 f"(fault={fault}, open intents {open_intents}, approved {approved})")
        t0 = time.monotonic()
        restart_service(self.p)
        t1 = time.monotonic()
        for a in actions:
            out, _ = a.proc.communicate(timeout=self.order_timeout + 30)
            a.first = _parse(out)
            err = a.first.get("error") if isinstance(a.first, dict) else None
            if a.first is None or (err and err.get("type") in ("OutcomeUnknown", "ServiceUnavailable")):
                self.stats.first_attempt_unknown += 1
        t2 = time.monotonic()
        self._wait_settled()
        t3 = time.monotonic()
        self._retry(actions, n)
        t4 = time.monotonic()
        # A retry whose first attempt never arrived is a first execution: it may still be running, or be open
        # until reconciliation (its CLI gave up first), when the retries return. Checked once it has settled.
        self._wait_settled()
        t5 = time.monotonic()
        self.stats.rounds += 1
        for v in self.check(f"round {n}"):
            self.log(f"  VIOLATION: {v}")
        self.log(f"  restart {t1 - t0:.1f} s, commands {t2 - t1:.1f} s, settle {t3 - t2:.1f} s, "
                 f"retries {t4 - t3:.1f} s, settle {t5 - t4:.1f} s, check {time.monotonic() - t5:.1f} s")

    def _kill_point(self, actions: list[Action]) -> tuple[str, float]:
        """Wait for the seeded moment to kill: a delay after launch, or a delay after the first of the round's
        intents (or ``order_submitted`` records) became durable — so kills land before, during and after the
        broker call. Returns (what was waited for, the extra delay)."""
        mode = self.rng.choice(("launch", "intent", "submitted"))
        if mode == "launch":
            delay = self.rng.uniform(*self.kill_window)
        else:
            delay = self.rng.uniform(0.0, 0.3 if mode == "intent" else 0.15)
            rids = [a.request_id for a in actions]
            refs = [a.order_ref for a in actions]
            marks = ", ".join("?" * len(actions))
            sql = (f"SELECT count(*) FROM order_intents WHERE request_id IN ({marks})" if mode == "intent" else
                   f"SELECT count(*) FROM event_store WHERE kind = 'order_submitted' AND correlation_id IN ({marks})")
            store = self._store()
            deadline = time.monotonic() + self.order_timeout + 2
            while time.monotonic() < deadline:
                if store.execute(sql, rids if mode == "intent" else refs, write=False)[0][0]:
                    break
                time.sleep(0.01)
            else:
                mode += " (never seen)"
        time.sleep(delay)
        return mode, delay

    def run(self, rounds: int) -> CrashStats:
        start = time.monotonic()
        for _ in range(rounds):
            self.round()
        self.stats.seconds = round(time.monotonic() - start, 1)
        return self.stats

    # -------------------------------------------------------------- records
    def _store(self) -> Any:
        from trader.data.store import state_store

        return state_store(self.home / "data")

    def _open_counts(self) -> tuple[int, int]:
        s = self._store()
        intents = s.execute("SELECT count(*) FROM order_intents WHERE state = 'received'", write=False)[0][0]
        approved = s.execute("SELECT count(*) FROM proposal_store WHERE state = 'APPROVED'", write=False)[0][0]
        return int(intents), int(approved)

    def _wait_settled(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self._open_counts() != (0, 0):
            if time.monotonic() > deadline:
                return  # the invariant check reports what is left open
            time.sleep(0.1)

    def _events(self, kind: str) -> list[tuple[str | None, dict[str, Any]]]:
        rows = self._store().execute("SELECT correlation_id, payload FROM event_store WHERE kind = ?", [kind],
                                     write=False)
        return [(cid, json.loads(payload) if isinstance(payload, str) else payload) for cid, payload in rows]

    # -------------------------------------------------------------- retries
    def _retry(self, actions: list[Action], n: int) -> None:
        from trader.data.order_records import IntentStore

        intents = IntentStore(self._store())
        recorded = {a.request_id: intents.get(a.request_id) for a in actions}
        procs = [subprocess.Popen([sys.executable, "-m", "trader.mmr_cli", "--json", *a.args], env=self.p.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in actions]
        for a, proc in zip(actions, procs, strict=True):
            before = recorded[a.request_id]
            stdout, stderr = proc.communicate(timeout=60)
            self.stats.retries += 1
            doc = _parse(stdout)
            where = f"round {n}: retry of {a.kind} {a.request_id}"
            if not isinstance(doc, dict):
                self.stats.violations.append(f"{where}: no JSON answer ({stdout[-300:]!r} {stderr[-300:]!r})")
                continue
            if before is None:
                continue  # the first attempt never reached trader_service: the retry is the first execution
            if before.state == "done":
                ids = doc.get("order_ids")
                if ids is None and isinstance(doc.get("order"), dict):
                    ids = doc["order"].get("order_ids")
                if "error" in doc or sorted(ids or []) != sorted(before.order_ids):
                    self.stats.violations.append(f"{where}: recorded done {list(before.order_ids)}, retry said {doc}")
            elif before.state in ("refused", "expired"):
                want = (before.error or {}).get("type")
                if doc.get("error", {}).get("type") != want:
                    self.stats.violations.append(f"{where}: recorded {before.state} {want}, retry said {doc}")
            else:
                self.stats.violations.append(f"{where}: intent still {before.state} after settlement")

    # -------------------------------------------------------------- invariants
    def check(self, where: str = "final") -> list[str]:
        """Check every invariant (module doc) against the broker; violations are added to the stats."""
        from trader.data.proposals import ProposalStore

        self.stats.invariant_checks += 1
        found: list[str] = []
        time.sleep(0.3)  # let the last fills/commissions reach the ledger
        truth = self.view.truth()
        store = self._store()
        proposals = ProposalStore(store).list(None, limit=100_000)
        self.stats.proposals_executed = sum(p.state.value == "EXECUTED" for p in proposals)
        self.stats.proposals_failed = sum(p.state.value == "FAILED" for p in proposals)
        self.stats.broker_orders = len(truth.orders)
        self.stats.broker_executions = len(truth.executions)
        # proposals
        for p in proposals:
            ref = f"proposal-{p.id}"
            at_broker = [o["order_id"] for o in truth.orders_for(ref)]
            unmatched = set(p.order_ids) - set(at_broker)  # completed orders without an execution have id 0
            state = p.state.value
            if state == "APPROVED":
                found.append(f"proposal {p.id} still APPROVED")
            elif state == "EXECUTED":
                if not p.order_ids:
                    found.append(f"proposal {p.id} EXECUTED without order ids")
                elif len(unmatched) > at_broker.count(0):
                    found.append(f"proposal {p.id} EXECUTED with {list(p.order_ids)}, broker has {sorted(at_broker)}")
            elif at_broker:
                found.append(f"proposal {p.id} {state} but the broker has orders {sorted(at_broker)} for {ref}")
        # placement records
        placed = {cid for cid, _ in self._events("order_placed")}
        adopted = self._events("order_adopted")
        adopted_refs = {cid for cid, _ in adopted}
        adopted_keys = Counter(payload.get("key") for _, payload in adopted)
        for o in truth.orders.values():
            ref = o["order_ref"]
            if ref.startswith(FOREIGN_PREFIX):
                if adopted_keys[f"perm:{o['perm_id']}"] < 1:
                    found.append(f"foreign order {o['perm_id']} ({ref}) has no order_adopted record")
            elif ref and ref not in placed and ref not in adopted_refs:
                found.append(f"broker order {o['order_id']} ({ref}) has no order_placed/order_adopted record")
        dup_adopt = [k for k, c in adopted_keys.items() if c > 1]
        if dup_adopt:
            found.append(f"order_adopted recorded more than once for {dup_adopt}")
        # fills
        ledger = {r[0] for r in store.execute("SELECT exec_id FROM fills", write=False)}
        with self.p.client("trader_service", timeout=10) as c:
            trades = {t["exec_id"] for t in c.rpc().trades(limit=10_000)}
        broker_execs = set(truth.executions)
        for name, mine in (("fills table", ledger), ("mmr trades", trades)):
            if missing := broker_execs - mine:
                found.append(f"{name} lacks broker executions {sorted(missing)}")
            if extra := mine - broker_execs:
                found.append(f"{name} has executions the broker does not: {sorted(extra)}")
        # nothing twice
        expected = {a.order_ref: a for a in self.actions}
        per_ref = Counter(o["order_ref"] for o in truth.orders.values() if o["order_ref"])
        double = 0
        for ref, count in per_ref.items():
            a = expected.get(ref)
            legs = a.legs if a is not None else 1
            over_orders = count > legs
            over_shares = a is not None and truth.executed_shares(ref) > a.quantity + 1e-9
            if over_orders or over_shares:
                double += 1
                found.append(f"{ref}: {count} broker orders (allowed {legs}), executed "
                             f"{truth.executed_shares(ref):g} of {a.quantity if a else '?'}")
        self.stats.double_executions = double
        open_rows = store.execute("SELECT request_id FROM order_intents WHERE state = 'received'", write=False)
        if open_rows:
            found.append(f"intents left open: {[r[0] for r in open_rows]}")
        self.stats.intents_recovered = len(self._events("intent_recovered"))
        # each exec id logged once
        for kind in ("fill", "commission"):
            counts = Counter(p.get("exec_id") for _, p in self._events(kind) if p.get("outcome") != "corrected")
            if again := sorted(e for e, c in counts.items() if c > 1):
                found.append(f"{kind} events logged more than once for {again}")
        self.stats.violations += [f"{where}: {v}" for v in found]
        return found
