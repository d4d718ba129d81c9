"""Operations: ``logs``, ``reconcile``, ``market-hours`` and ``verify`` (a preflight before trading).

Nothing here imports pandas at module level: ``market-hours`` loads exchange_calendars (and so pandas) only
when it runs.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, ExitAfterOutput, output, port_open

LOG_SERVICES = ("trader_service", "data_service", "strategy_service", "sim_gateway")


# --------------------------------------------------------------------------- logs
def tail_lines(path: Path, lines: int, pattern: re.Pattern[str] | None = None) -> list[str]:
    """The last ``lines`` lines of a log file (only those matching ``pattern`` when given)."""
    keep: deque[str] = deque(maxlen=lines)
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if pattern is None or pattern.search(line):
                keep.append(line.rstrip("\n"))
    return list(keep)


def _regex(ctx: click.Context, param: click.Parameter, value: str | None) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression ({exc})", ctx, param) from None


def _render_logs(data: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    for service, body in data["logs"].items():
        console.print(f"[bold]== {service}[/] {body['file']}")
        for line in body["lines"]:
            console.print(escape(line), highlight=False)


@click.command()
@click.argument("service", required=False, type=click.Choice(LOG_SERVICES))
@click.option("--lines", type=click.IntRange(1, 5000), default=40, show_default=True,
              help="The last N lines of each log (after --grep).")
@click.option("--grep", "pattern", default=None, callback=_regex, help="Only lines matching this regular expression.")
@click.pass_obj
@output(_render_logs)
def logs(app: AppContext, service: str | None, lines: int, pattern: re.Pattern[str] | None) -> dict[str, Any]:
    """The end of a service's log (every service's when SERVICE is not given), from the log directory."""
    out: dict[str, Any] = {}
    for name in [service] if service else LOG_SERVICES:
        path = app.paths.log_dir / f"{name}.log"
        if path.exists():
            out[name] = {"file": str(path), "lines": tail_lines(path, lines, pattern)}
        elif service:
            out[name] = {"file": str(path), "lines": [], "missing": True}
    return {"log_dir": str(app.paths.log_dir), "logs": out}


# --------------------------------------------------------------------------- reconcile
@click.command()
@click.pass_obj
@output()
def reconcile(app: AppContext) -> dict[str, Any]:
    """Reconcile with the broker now: positions, open orders and executions against the last known book, and our
    order records against the broker's; reports what differed (the same runs on every reconnect)."""
    return app.call("trader_service", "reconcile_now", timeout=max(app.config.rpc_timeout, 30.0))


# --------------------------------------------------------------------------- market-hours
EXCHANGE_ALIASES = {"NYSE": "XNYS", "NASDAQ": "XNAS", "ARCA": "XNYS", "AMEX": "XASE", "LSE": "XLON",
                    "TSX": "XTSE", "ASX": "XASX", "TSE": "XTKS", "HKEX": "XHKG", "XETRA": "XETR", "CME": "CMES"}


def market_hours_at(exchange: str, now: datetime) -> dict[str, Any]:
    """Open/closed now (regular and extended hours), the next open and the next close of one exchange."""
    import exchange_calendars as xcals

    from trader.trading.market_hours import ExchangeSession

    name = EXCHANGE_ALIASES.get(exchange.upper(), exchange.upper())
    if name not in xcals.get_calendar_names(include_aliases=True):
        raise click.UsageError(f"unknown exchange {exchange!r}: use an ISO MIC such as XNYS, XNAS, XLON, XTKS "
                               f"(or {', '.join(sorted(EXCHANGE_ALIASES))})")
    # Pre/post-market hours as modelled by ExchangeSession are the US ones; elsewhere extended = regular.
    us = name in ("XNYS", "XNAS", "XASE")
    session = ExchangeSession(name) if us else ExchangeSession(name, pre_market=None)
    cal = session.calendar
    import pandas as pd

    ts = pd.Timestamp(now).tz_convert("UTC").floor("min")
    is_open = session.is_open(now)
    return {
        "exchange": name, "now": now.isoformat(timespec="seconds"), "open": is_open,
        "extended_open": session.is_open(now, extended=True),
        "next_open": cal.next_open(ts).isoformat(), "next_close": cal.next_close(ts).isoformat(),
        "timezone": str(cal.tz),
    }


def _render_hours(d: dict[str, Any], console: Any) -> None:
    state = "[green]open[/]" if d["open"] else ("[yellow]extended hours[/]" if d["extended_open"] else "[red]closed[/]")
    console.print(f"{d['exchange']} is {state} at {d['now']} — next open {d['next_open']}, next close "
                  f"{d['next_close']} ({d['timezone']})")


@click.command("market-hours")
@click.argument("exchange", default="XNYS")
@click.pass_obj
@output(_render_hours)
def market_hours(app: AppContext, exchange: str) -> dict[str, Any]:
    """Is EXCHANGE (default XNYS) open now; its next open and next close (from exchange-calendars)."""
    return market_hours_at(exchange, datetime.now(UTC))


# --------------------------------------------------------------------------- verify
def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "ok": ok, "detail": detail}


def verify_checks(app: AppContext) -> list[dict[str, Any]]:
    """Every preflight check, one row each: config, ports, broker, stores, clock."""
    from trader.errors import ConfigError

    try:
        cfg = app.config
    except ConfigError as exc:
        return [_check("config", False, str(exc))]
    checks = [_check("config", True, f"{app.paths.config_dir} (broker {cfg.broker})")]
    for service, address in cfg.rpc_endpoints().items():
        checks.append(_port_check(app, service, address))
    host, port = cfg.ib_server_address, cfg.ib_server_port
    reachable = port_open(f"tcp://{host}:{port}", 1.0)
    checks.append(_check("broker", reachable, f"{cfg.broker} gateway at {host}:{port} "
                         + ("accepts connections" if reachable else "refuses connections (is it running?)")))
    for label, folder in (("data store", app.paths.data_dir), ("logs", app.paths.log_dir),
                          ("config", app.paths.config_dir)):
        checks.append(_writable(label, folder))
    now = datetime.now(UTC)
    sane = 2024 <= now.year < 2100
    checks.append(_check("clock", sane, f"system clock {now.isoformat(timespec='seconds')}"
                         + ("" if sane else ": not a plausible date, fix the system clock")))
    return checks


def _port_check(app: AppContext, service: str, address: str) -> dict[str, Any]:
    """A service port is fine when it is free (the service can bind it) or our service answers on it."""
    from trader.cli.status import probe_service

    if not port_open(address, 0.3):
        return _check(f"port {service}", True, f"{address} free")
    row = probe_service(app, service, address, 2.0)
    if row["up"]:
        return _check(f"port {service}", True, f"{address} held by {service} (pid {row.get('pid')})")
    return _check(f"port {service}", False, f"{address} is taken by something that is not {service}: "
                  f"{row.get('error')}")


def _writable(label: str, folder: Path) -> dict[str, Any]:
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".verify-"):
            pass
    except OSError as exc:
        return _check(label, False, f"{folder} not writable: {exc}")
    return _check(label, True, f"{folder} writable")


def _render_verify(d: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    for c in d["checks"]:
        mark = "[green]ok  [/]" if c["ok"] else "[red]FAIL[/]"
        console.print(f"{mark} {c['check']:<24} {escape(c['detail'])}")


@click.command()
@click.pass_obj
def verify(app: AppContext) -> None:
    """Preflight: config valid, service ports free or ours, broker reachable, stores writable, clock sane — one
    line per check; exits 1 when any check fails."""
    checks = verify_checks(app)
    doc = {"ok": all(c["ok"] for c in checks), "checks": checks}
    app.emit(doc, _render_verify)
    if not doc["ok"]:
        raise ExitAfterOutput(1)
