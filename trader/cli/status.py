"""``status``: is every service up, how fast does it answer, which version, and the broker connection."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from trader.cli.core import AppContext, ExitAfterOutput, port_open


def probe_service(app: AppContext, service: str, address: str, timeout: float) -> dict[str, Any]:
    """Ask one service for its status; never raises, never waits longer than ``timeout``."""
    row: dict[str, Any] = {"service": service, "address": address, "up": False}
    if not port_open(address, min(timeout, 0.5)):
        row["error"] = "not running (connection refused)"
        return row
    from trader.messaging.rpc import RPCClient
    from trader.objects import ServiceStatus  # registers the reply type with the codec

    t0 = time.perf_counter()
    try:
        with RPCClient(address, timeout=timeout, key=app.client_key()) as client:
            st = client.rpc().status()
        if not isinstance(st, ServiceStatus):
            raise TypeError(f"unexpected status reply {type(st).__name__}")
    except Exception as exc:  # down, stuck or incompatible: report, do not crash the status command
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    row.update(
        up=True,
        ready=bool(getattr(st, "ready", True)),  # False while on_start runs: it answers ServiceStarting
        latency_ms=round((time.perf_counter() - t0) * 1000, 2),
        version=st.version,
        pid=st.pid,
        uptime_seconds=st.uptime_seconds,
        endpoints=st.endpoints,
        details=st.details,
    )
    return row


def collect_status(app: AppContext, timeout: float | None = None, detail: bool = True) -> dict[str, Any]:
    """Status of every service, probed in parallel.

    The broker block appears once (top level, not again inside trader_service's details). ``detail=False`` is
    the compact form an agent polls: no addresses or endpoints, and the broker's recent IB messages reduced to
    their count (``last_error`` stays)."""
    timeout = timeout or app.config.rpc_timeout
    endpoints = app.config.rpc_endpoints()
    with ThreadPoolExecutor(max_workers=len(endpoints)) as pool:
        rows = list(pool.map(lambda kv: probe_service(app, kv[0], kv[1], timeout), endpoints.items()))
    trader_row = next(r for r in rows if r["service"] == "trader_service")
    broker = (trader_row.get("details") or {}).pop("broker", None) or {
        "kind": app.config.broker,
        "state": "unknown (trader_service down)",
        "address": f"{app.config.ib_server_address}:{app.config.ib_server_port}",
    }
    if not detail:
        for r in rows:
            for key in ("address", "endpoints"):
                r.pop(key, None)
        if isinstance(broker.get("recent_errors"), list):
            broker["recent_errors"] = len(broker["recent_errors"])
    from trader.cli.setup import trading_mode

    doc: dict[str, Any] = {
        "mode": trading_mode(app.config),  # sim / paper / live: the first thing an operator must see
        "all_up": all(r["up"] for r in rows),
        "all_ready": all(r["up"] and r.get("ready") for r in rows),
        "services": rows,
        "broker": broker,
    }
    if detail:
        doc.update(mmr_home=str(app.paths.data_dir.parent), log_dir=str(app.paths.log_dir))
    return doc


# What the default (compact) JSON keeps of each service's details: the facts an agent acts on.
COMPACT_DETAILS = {
    "trader_service": ("trading_halted_for",),
    "data_service": ("broker_connected", "jobs_running"),
    "strategy_service": ("kill_switch",),
}
COMPACT_ROW_KEYS = ("service", "up", "ready", "latency_ms", "pid", "error")
COMPACT_BROKER_KEYS = ("kind", "state", "ready", "reconciled", "alarm", "disconnected_for_s", "last_error",
                       "recent_errors")


def compact_status(doc: dict[str, Any]) -> dict[str, Any]:
    """The default ``status --json``: one small row per service (up, ready, latency, pid, the details an agent
    acts on) and the broker's state; version, uptime, account, addresses and endpoints are ``--detail``."""
    rows = []
    for r in doc["services"]:
        row = {k: r[k] for k in COMPACT_ROW_KEYS if k in r}
        details = r.get("details") or {}
        kept = {k: details[k] for k in COMPACT_DETAILS.get(r["service"], ()) if k in details}
        if kept:
            row["details"] = kept
        rows.append(row)
    broker = {k: v for k, v in doc["broker"].items() if k in COMPACT_BROKER_KEYS and v is not None}
    mode = {"mode": doc["mode"]} if "mode" in doc else {}
    return {**mode, "all_up": doc["all_up"], "all_ready": doc["all_ready"], "services": rows, "broker": broker}


def _render(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    mode = data.get("mode") or "?"
    style = {"live": "bold white on red", "paper": "bold green", "sim": "bold cyan"}.get(mode, "bold")
    console.print(f"[{style}] {mode.upper()} [/]" + ("  real money: orders reach a live account" if mode == "live"
                                                     else ""))
    table = Table(title="MMR services")
    for col in ("service", "state", "latency", "version", "pid", "uptime", "address"):
        table.add_column(col)
    for r in data["services"]:
        state = "[green]up[/]" if r["up"] else f"[red]down[/] {r.get('error', '')}"
        table.add_row(
            r["service"],
            state,
            f"{r['latency_ms']:.1f} ms" if r["up"] else "",
            r.get("version", ""),
            str(r.get("pid", "")),
            f"{r['uptime_seconds']:.0f} s" if r["up"] else "",
            r.get("address", ""),
        )
    console.print(table)
    _render_broker(data["broker"], console)
    trader = next((r for r in data["services"] if r["service"] == "trader_service"), {})
    account = (trader.get("details") or {}).get("account") or {}
    if account:
        console.print("account: " + "  ".join(f"{k}={_money(account.get(k))}" for k in _ACCOUNT_KEYS))
    if data.get("log_dir"):
        console.print(f"logs: {data['log_dir']}")


_ACCOUNT_KEYS = ("net_liquidation", "cash", "daily_pnl", "unrealized_pnl", "realized_pnl")


def _money(v: Any) -> str:
    return "?" if v is None else f"{v:,.2f}"


def _render_broker(b: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    console.print(f"broker: {b.get('kind')} at {b.get('address')} — {escape(str(b.get('state')))}")
    if "ready" not in b:  # trader_service down or not connected yet: nothing more is known
        return
    flags = []
    for key in ("ready", "reconciled"):
        flags.append(f"{key}: " + ("[green]yes[/]" if b.get(key) else "[red]no[/]"))
    if b.get("alarm"):
        away = b.get("disconnected_for_s")
        flags.append("[bold red]ALARM[/]" + (f" disconnected for {away:.0f} s" if away is not None else ""))
    console.print("  " + "  ".join(flags))
    err = b.get("last_error")
    if isinstance(err, dict):
        code = f"{err['code']} " if err.get("code") is not None else ""
        console.print(f"  last error: {escape(code + str(err.get('message') or err))}")
    elif err:
        console.print(f"  last error: {escape(str(err))}")


@click.command()
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True, max=600), default=None,
              help="Seconds to wait for each service (default rpc_timeout).")
@click.option("--detail", is_flag=True,
              help="Also addresses, endpoints, the broker's recent IB messages, MMR_HOME and the log directory.")
@click.pass_obj
def status(app: AppContext, timeout: float | None, detail: bool) -> None:
    """Every service: up/down, ready, latency, pid; the broker connection state (--detail: versions, uptimes,
    account, addresses, recent IB messages). Exits 1 when any service is down
    (the document is printed either way), so `mmr --json status` doubles as a health check."""
    doc = collect_status(app, timeout, detail=detail)
    # The human table shows the account too; the agent's default JSON is the compact view.
    app.emit(doc if detail or not app.json else compact_status(doc), _render)
    if not doc["all_up"]:
        raise ExitAfterOutput(1)
