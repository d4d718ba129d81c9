"""Historical data: ``history ib|list|read|gaps|update|export`` (and ``massive`` when configured).

Downloads run in data_service (it owns the broker connection for data and paces IB's requests); the CLI shows
a Rich progress bar while it polls the job, or with ``--json`` prints only the final summary. ``list``, ``read``,
``gaps`` and ``export`` read the store directly when data_service is down (cron sweeps, offline analysis).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, bound_rows, list_options, output, service_up

DATA = "data_service"
DOWNLOAD_TIMEOUT = 6 * 3600.0  # a 100-symbol minute-bar sweep at IB's pace takes hours
POLL_SECONDS = 0.5


def _bar_size_option(fn):
    return click.option("--bar-size", "--bar_size", "bar_size", default="1 min", show_default=True,
                        help='IB bar size, e.g. "1 min", "5 mins", "1 hour", "1 day".')(fn)


def _parse_time(value: str | None) -> dt.datetime | None:
    """ISO date/time; a date or naive time is taken as UTC."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _service_up(app: AppContext) -> bool:
    return service_up(app, DATA)


def _bar_store(app: AppContext):  # noqa: ANN202
    from trader.data.bars import BarStore

    return BarStore.open(app.paths.data_dir)


# --------------------------------------------------------------------------- rendering
def _render_summary(r: dict[str, Any], console: Any) -> None:
    console.print(f"{r['symbols']} symbol(s), {r['bar_size']}: {r['bars_new']:,} new bars in {r['requests']} "
                  f"requests, {r['seconds']:g} s (paced {r['pacing_wait_seconds']:g} s)")
    for row in r.get("results", []):
        console.print(f"  {row['symbol']}: {row['bars_new']:,} new, {row['requests']} requests, "
                      f"{row['skipped']} chunks already stored", style="dim")
    for err in r.get("errors", []):
        console.print(f"  [red]{err['symbol']}: {err['error']}[/]")


def _render_list(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table("symbol", "conid", "bar size", "source", "first", "last", "bars")
    for r in rows:
        table.add_row(r["symbol"], str(r["conid"]), r["bar_size"], r["source"], str(r["first"]), str(r["last"]),
                      f"{r['bars']:,}")
    console.print(table if rows else "no stored bars — download some with 'mmr history ib --symbol AAPL'")


def _render_bars(r: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("ts", "open", "high", "low", "close", "volume")
    bars = r["bars"]
    shown = bars if len(bars) <= 20 else bars[:10] + bars[-10:]
    for b in shown:
        table.add_row(str(b["ts"]), *(f"{b[k]:g}" for k in ("open", "high", "low", "close", "volume")))
    console.print(table)
    console.print(f"{r['symbol']} {r['bar_size']}: {r['count']:,} bars", style="dim")


# --------------------------------------------------------------------------- commands
@click.group()
def history() -> None:
    """Historical bars: download (IB), inventory, read, gaps, update, export."""


def _run_download(app: AppContext, method: str, **kwargs: Any) -> dict[str, Any]:
    if app.json:
        return app.call(DATA, method, timeout=DOWNLOAD_TIMEOUT, **kwargs)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    update = method == "history_update"
    job = app.call(DATA, "history_start", update=update, **kwargs)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=app.console(stderr=True), transient=True) as progress:
        task = progress.add_task("history", total=job["symbols"])
        while job["state"] == "running":
            time.sleep(POLL_SECONDS)
            job = app.call(DATA, "history_job", job["job_id"])
            progress.update(task, completed=job["symbols_done"],
                            description=f"{job['current'] or ''} ({job['chunks_done']} requests)")
    if job["state"] != "done":
        from trader.errors import MMRError, error_from_wire

        if job.get("error_wire"):
            raise error_from_wire(job["error_wire"])
        raise MMRError(job.get("error") or f"history job {job['state']}")
    return job["result"]


@history.command("ib")
@click.option("--symbol", "symbols", multiple=True, help="Symbol to download (repeatable).")
@click.option("--universe", default=None, help="Download every symbol of this universe.")
@_bar_size_option
@click.option("--prev-days", "--prev_days", "prev_days", type=float, default=5, show_default=True,
              help="How many days back from now.")
@click.pass_obj
@output(_render_summary)
def history_ib(app: AppContext, symbols: tuple[str, ...], universe: str | None, bar_size: str,
               prev_days: float) -> dict[str, Any]:
    """Download IB bars (paced, resumable) into the bar store."""
    if bool(symbols) == bool(universe):
        raise click.UsageError("give --symbol SYM (repeatable) or --universe NAME")
    return _run_download(app, "history_download", symbols=list(symbols) or None, universe=universe,
                         bar_size=bar_size, prev_days=prev_days)


@history.command("massive")
@click.option("--symbol", "symbols", multiple=True, help="Symbol to download (repeatable).")
@click.option("--universe", default=None, help="Download every symbol of this universe.")
@_bar_size_option
@click.option("--prev-days", "--prev_days", "prev_days", type=float, default=5, show_default=True)
@click.pass_obj
@output(_render_summary)
def history_massive(app: AppContext, symbols: tuple[str, ...], universe: str | None, bar_size: str,
                    prev_days: float) -> dict[str, Any]:
    """Download Massive.com (Polygon) bars (needs MASSIVE_API_KEY)."""
    if bool(symbols) == bool(universe):
        raise click.UsageError("give --symbol SYM (repeatable) or --universe NAME")
    return app.call(DATA, "history_massive", symbols=list(symbols) or None, universe=universe,
                    bar_size=bar_size, prev_days=prev_days, timeout=DOWNLOAD_TIMEOUT)


@history.command("update")
@click.option("--universe", default=None, help="Universe to bring up to date.")
@click.option("--symbol", "symbols", multiple=True, help="Symbol to bring up to date (repeatable).")
@_bar_size_option
@click.option("--prev-days", "--prev_days", "prev_days", type=float, default=5, show_default=True,
              help="Days to fetch for a symbol with nothing stored yet.")
@click.pass_obj
@output(_render_summary)
def history_update(app: AppContext, universe: str | None, symbols: tuple[str, ...], bar_size: str,
                   prev_days: float) -> dict[str, Any]:
    """Fetch only the bars missing since the last stored one (the cron job)."""
    if bool(symbols) == bool(universe):
        raise click.UsageError("give --universe NAME or --symbol SYM")
    return _run_download(app, "history_update", symbols=list(symbols) or None, universe=universe,
                         bar_size=bar_size, prev_days=prev_days)


@history.command("list")
@click.option("--symbol", default=None, help="Only this symbol.")
@list_options(100, "series (by their last bar)")
@click.pass_obj
@output(_render_list)
def history_list(app: AppContext, symbol: str | None, limit: int, since: Any) -> list[dict[str, Any]]:
    """What bars are stored: per symbol and bar size, first, last, count, source; most recently updated first."""
    if _service_up(app):
        return bound_rows(app.call(DATA, "history_list", symbol), limit, since, "last")
    from trader.data.bars import symbols_by_conid
    from trader.data_service import history_inventory

    store = _bar_store(app)
    return bound_rows(history_inventory(store, symbols_by_conid(store), symbol), limit, since, "last")


def _read(app: AppContext, symbol: str, bar_size: str, start: str | None, end: str | None):  # noqa: ANN202
    t0, t1 = _parse_time(start), _parse_time(end)
    if _service_up(app):
        return app.call(DATA, "history_read", symbol, bar_size, t0, t1, timeout=max(app.config.rpc_timeout, 60))
    from trader.data.bars import lookup_symbol
    from trader.errors import ContractNotFound

    store = _bar_store(app)
    found = lookup_symbol(store, symbol)
    if not found:
        raise ContractNotFound(f"no stored bars for {symbol}")
    return store.read(found[0].conid, bar_size, start=t0, end=t1)


@history.command("read")
@click.option("--symbol", required=True)
@_bar_size_option
@click.option("--from", "start", default=None, help="Start (ISO date/time, UTC unless it has an offset).")
@click.option("--to", "end", default=None, help="End, exclusive (ISO date/time).")
@click.pass_obj
@output(_render_bars)
def history_read(app: AppContext, symbol: str, bar_size: str, start: str | None, end: str | None) -> dict[str, Any]:
    """Stored bars of one symbol."""
    frame = _read(app, symbol, bar_size, start, end)
    records = frame.reset_index().to_dict("records")
    return {"symbol": symbol.upper(), "bar_size": bar_size, "count": len(frame), "bars": records}


def _render_gaps(r: dict[str, Any], console: Any) -> None:
    console.print(f"{r['symbol']} {r['bar_size']} ({r['calendar']}): {r['bars']:,} bars stored, "
                  f"{r['missing_sessions']} missing sessions, {r['missing_bars']:,} missing bars")
    for g in r["gaps"][:50]:
        console.print(f"  {g['session']} {g['kind']}: {g['start']} → {g['end']} ({g['missing_bars']} bars)")
    if len(r["gaps"]) > 50:
        console.print(f"  … {len(r['gaps']) - 50} more (use --json for all)", style="dim")


@history.command("gaps")
@click.option("--symbol", required=True)
@_bar_size_option
@click.option("--from", "start", default=None, help="First session to check (YYYY-MM-DD; default first bar).")
@click.option("--to", "end", default=None, help="Last session to check (default last bar).")
@click.pass_obj
@output(_render_gaps)
def history_gaps(app: AppContext, symbol: str, bar_size: str, start: str | None, end: str | None) -> dict[str, Any]:
    """Missing sessions and bars against the exchange calendar (holidays and half days respected)."""
    d0 = dt.date.fromisoformat(start) if start else None
    d1 = dt.date.fromisoformat(end) if end else None
    if _service_up(app):
        return app.call(DATA, "history_gaps", symbol, bar_size, d0, d1, timeout=max(app.config.rpc_timeout, 60))
    from trader.data_service import series_gaps

    return series_gaps(_bar_store(app), symbol, bar_size, d0, d1)


@history.command("export")
@click.option("--symbol", required=True)
@_bar_size_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--output", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default SYMBOL_BARSIZE.FORMAT in the current directory).")
@click.option("--from", "start", default=None)
@click.option("--to", "end", default=None)
@click.pass_obj
@output()
def history_export(app: AppContext, symbol: str, bar_size: str, fmt: str, out: Path | None, start: str | None,
                   end: str | None) -> dict[str, Any]:
    """Write stored bars of one symbol to a Parquet or CSV file."""
    frame = _read(app, symbol, bar_size, start, end)
    out = out or Path(f"{symbol.upper()}_{bar_size.replace(' ', '')}.{fmt}")
    if fmt == "parquet":
        frame.to_parquet(out)
    else:
        frame.to_csv(out)
    return {"symbol": symbol.upper(), "bar_size": bar_size, "bars": len(frame), "path": str(out.resolve())}
