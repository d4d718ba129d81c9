"""data_service: historical bars (IB, Massive), the bar inventory and universes, over RPC.

The service owns its own ``ib_async.IB`` connection (clientId ``data_ib_client_id``, distinct from
trader_service's) and opens it lazily on the first request that needs the broker, so the service starts and
serves reads, inventory and universes while the broker is down. Downloads run as background jobs: `history_start`
returns a job id at once and `history_job` reports progress (the CLI draws a Rich progress bar from it);
`history_download`/`history_update` start a job and wait for its summary.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import sys
from typing import TYPE_CHECKING, Any

from trader.errors import (
    ContractNotFound,
    InvalidUniverse,
    MMRError,
    ServiceUnavailable,
    error_from_wire,
    error_to_wire,
)
from trader.messaging.rpc import rpcmethod
from trader.service import Service, run_service

if TYPE_CHECKING:
    import pandas
    from ib_async import IB

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
DEFAULT_UPDATE_DAYS = 5


def _job_view(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != "task"}


class DataService(Service):
    """Historical bars, universes and the data inventory."""

    name = "data_service"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ib: IB | None = None
        self._connect_lock = asyncio.Lock()
        self._jobs: dict[int, dict[str, Any]] = {}
        self._job_ids = itertools.count(1)
        self._download_lock = asyncio.Lock()  # one download at a time: IB's pacing is per connection

    def rpc_port(self) -> int:
        return self.config.data_rpc_port

    def details(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.paths.data_dir),
            "broker_connected": bool(self._ib and self._ib.isConnected()),
            "data_ib_client_id": self.config.data_ib_client_id,
            "jobs_running": sum(1 for j in self._jobs.values() if j["state"] == "running"),
        }

    async def on_start(self) -> None:
        """Apply the stores' schemas and create the shipped universes before reporting ready, so the first
        `universe list` or `history list` is a plain read (in a worker: the loop keeps answering `status`)."""
        def warm() -> None:
            self.universes.ensure_starters()
            self.bars.inventory()

        try:
            await asyncio.to_thread(warm)
        except Exception:  # noqa: BLE001 - a locked or broken store must not stop the service; reads retry it
            log.exception("could not prepare the stores at start")

    async def on_stop(self) -> None:
        for job in self._jobs.values():
            task = job.get("task")
            if task is not None and not task.done():
                task.cancel()
        if self._ib is not None:
            self._ib.disconnect()

    # ----------------------------------------------------------------- stores and broker
    @property
    def bars(self):  # noqa: ANN201
        from trader.data.bars import BarStore

        return BarStore.open(self.paths.data_dir)

    @property
    def universes(self):  # noqa: ANN201
        from trader.data.store import state_store
        from trader.data.universes import UniverseStore

        return UniverseStore(state_store(self.paths.data_dir))

    async def ib(self) -> IB:
        """The data connection to the broker, (re)connected on demand; ServiceUnavailable when it is down."""
        from ib_async import IB

        async with self._connect_lock:
            if self._ib is not None and self._ib.isConnected():
                return self._ib
            if self.config.broker == "sim":
                host, port = "127.0.0.1", self.config.sim_gateway_port
            else:
                host, port = self.config.ib_server_address, self.config.ib_server_port
            ib = IB()
            try:
                await ib.connectAsync(host, port, clientId=self.config.data_ib_client_id, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                ib.disconnect()
                raise ServiceUnavailable(
                    f"data_service cannot reach the broker at {host}:{port} "
                    f"(clientId {self.config.data_ib_client_id}): {exc or type(exc).__name__}") from None
            self._ib = ib
            return ib

    async def _resolve(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                       currency: str = "USD") -> Any:
        """An ib_async Contract for a symbol, remembered in bar_symbols."""
        from ib_async import Contract

        from trader.data.bars import BarSymbol, remember_symbol

        ib = await self.ib()
        details = await ib.reqContractDetailsAsync(
            Contract(symbol=symbol.upper(), secType=sec_type, exchange=exchange, currency=currency))
        if not details:
            raise ContractNotFound(f"no contract for {symbol} ({sec_type} {exchange} {currency})")
        d = details[0]
        c = d.contract
        remember_symbol(self.bars, BarSymbol(c.conId, c.symbol, c.secType, c.exchange or exchange,
                                             c.primaryExchange or "", c.currency, _tz(d.timeZoneId)))
        return c

    def _conid_for(self, symbol: str) -> int:
        from trader.data.bars import lookup_symbol

        found = lookup_symbol(self.bars, symbol)
        if not found:
            raise ContractNotFound(f"no stored bars for {symbol}; download them with 'mmr history ib --symbol {symbol}'")
        return found[0].conid

    # ----------------------------------------------------------------- downloads
    def _targets(self, symbols: list[str] | None, universe: str | None) -> list[tuple[str, str | None]]:
        if bool(symbols) == bool(universe):
            raise InvalidUniverse("give symbols or a universe (exactly one)")
        if universe:
            return [(m.symbol, universe) for m in self.universes.members(universe)]
        return [(s.upper(), None) for s in symbols or []]

    async def _run_job(self, job: dict[str, Any], targets: list[tuple[str, str | None]], bar_size: str,
                       prev_days: float | None, update: bool) -> None:
        from trader.data.history import SOURCE_IB, SOURCE_IB_SIM, HistoryDownloader
        from trader.data.store import utc_now

        async with self._download_lock:
            ib = await self.ib()
            results = []
            errors = []
            now = utc_now()

            def progress(done: int, total: int) -> None:
                job["chunks_done"] += 1

            # Bars from the simulated gateway are tagged apart: research must never mistake them for the market.
            source = SOURCE_IB_SIM if self.config.broker == "sim" else SOURCE_IB
            downloader = HistoryDownloader(ib, self.bars, progress=progress, source=source)
            for symbol, universe in targets:
                job["current"] = symbol
                try:
                    contract = await self._resolve(symbol)
                    if universe:
                        self.universes.set_conid(universe, symbol, contract.conId)
                    start = now - dt.timedelta(days=prev_days or DEFAULT_UPDATE_DAYS)
                    if update:
                        last = self.bars.last_bar_time(contract.conId, bar_size, source)
                        if last is not None:
                            start = last
                    r = await downloader.download(contract, bar_size, start, now)
                    results.append({"symbol": symbol, "conid": r.conid, "bar_size": bar_size,
                                    "chunks": r.chunks_total, "skipped": r.chunks_skipped,
                                    "requests": r.requests, "bars_received": r.bars_received,
                                    "bars_new": r.bars_new, "pacing_retries": r.pacing_retries})
                except MMRError as exc:
                    errors.append({"symbol": symbol, "error": str(exc)})
                job["symbols_done"] += 1
            job["result"] = {
                "bar_size": bar_size, "symbols": len(targets), "requests": downloader.requests,
                "bars_new": sum(r["bars_new"] for r in results), "pacing_wait_seconds": round(downloader.pacer.waited, 3),
                "seconds": round((utc_now() - now).total_seconds(), 3), "results": results, "errors": errors,
            }

    def _start(self, targets: list[tuple[str, str | None]], bar_size: str, prev_days: float | None,
               update: bool) -> dict[str, Any]:
        from trader.data.history import MAX_CHUNK_SECONDS

        if bar_size not in MAX_CHUNK_SECONDS:
            raise InvalidUniverse(f"unknown bar size {bar_size!r}; one of {', '.join(MAX_CHUNK_SECONDS)}")
        job_id = next(self._job_ids)
        job: dict[str, Any] = {"job_id": job_id, "state": "running", "symbols": len(targets), "symbols_done": 0,
                               "chunks_done": 0, "current": None, "result": None, "error": None}

        async def run() -> None:
            try:
                await self._run_job(job, targets, bar_size, prev_days, update)
                job["state"] = "done"
            except asyncio.CancelledError:
                job["state"] = "cancelled"
                raise
            except Exception as exc:  # reported to the caller through history_job
                log.exception("history job %d failed", job_id)
                # The error keeps its type across the wire (e.g. ServiceUnavailable when the broker is down).
                job["state"], job["error"], job["error_wire"] = "failed", f"{type(exc).__name__}: {exc}", \
                    error_to_wire(exc)

        job["task"] = asyncio.get_running_loop().create_task(run())
        self._jobs[job_id] = job
        return _job_view(job)

    @rpcmethod
    async def history_start(self, symbols: list[str] | None = None, universe: str | None = None,
                            bar_size: str = "1 min", prev_days: float = 5, update: bool = False) -> dict[str, Any]:
        """Start an IB download job (symbols or a universe); returns the job (poll with `history_job`)."""
        return self._start(self._targets(symbols, universe), bar_size, prev_days, update)

    @rpcmethod
    def history_job(self, job_id: int) -> dict[str, Any]:
        """State and progress of a download job; its summary once done."""
        job = self._jobs.get(job_id)
        if job is None:
            raise MMRError(f"no history job {job_id}")
        return _job_view(job)

    async def _wait(self, job: dict[str, Any]) -> dict[str, Any]:
        task = self._jobs[job["job_id"]]["task"]
        await asyncio.shield(task)
        done = self._jobs[job["job_id"]]
        if done["state"] == "failed":
            raise error_from_wire(done["error_wire"])
        return done["result"]

    @rpcmethod
    async def history_download(self, symbols: list[str] | None = None, universe: str | None = None,
                               bar_size: str = "1 min", prev_days: float = 5) -> dict[str, Any]:
        """Download IB bars for the last `prev_days` days and wait for the summary."""
        return await self._wait(await self.history_start(symbols, universe, bar_size, prev_days))

    @rpcmethod
    async def history_update(self, universe: str | None = None, symbols: list[str] | None = None,
                             bar_size: str = "1 min", prev_days: float = DEFAULT_UPDATE_DAYS) -> dict[str, Any]:
        """Fetch only what is missing since each series' last stored bar (`prev_days` back when none is)."""
        return await self._wait(await self.history_start(symbols, universe, bar_size, prev_days, update=True))

    async def _conid(self, symbol: str) -> int:
        """A symbol's conId: from the bar store's symbol table, else resolved through the broker."""
        from trader.data.bars import lookup_symbol

        found = lookup_symbol(self.bars, symbol)
        return found[0].conid if found else (await self._resolve(symbol)).conId

    @rpcmethod
    async def history_massive(self, symbols: list[str] | None = None, universe: str | None = None,
                              bar_size: str = "1 min", prev_days: float = 5) -> dict[str, Any]:
        """Download Massive.com (Polygon) aggregates into the bar store (source "massive")."""
        from trader.data.massive import MassiveClient, api_key
        from trader.data.store import utc_now

        key = api_key(self.config.massive_api_key)  # a missing key fails before any work
        targets = self._targets(symbols, universe)
        end = utc_now().date()
        start = end - dt.timedelta(days=max(int(prev_days), 1))
        results, errors = [], []
        t0 = utc_now()
        with MassiveClient(key, base_url=self.config.massive_base_url) as client:
            for symbol, _universe in targets:
                try:
                    conid = await self._conid(symbol)
                    frame = await asyncio.to_thread(client.aggregates, symbol, bar_size, start, end)
                    new = await asyncio.to_thread(self.bars.ingest, conid, bar_size, "massive", frame)
                    results.append({"symbol": symbol, "conid": conid, "bars_received": len(frame), "bars_new": new,
                                    "requests": 0, "skipped": 0})
                except MMRError as exc:
                    errors.append({"symbol": symbol, "error": str(exc)})
            requests = client.requests
        return {"bar_size": bar_size, "symbols": len(targets), "requests": requests,
                "bars_new": sum(r["bars_new"] for r in results), "pacing_wait_seconds": 0.0,
                "seconds": round((utc_now() - t0).total_seconds(), 3), "results": results, "errors": errors}

    # ----------------------------------------------------------------- inventory and reads
    @rpcmethod
    async def history_list(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Stored series: symbol, conId, bar size, source, first, last, bar count."""
        from trader.data.bars import symbols_by_conid

        # Store work runs in a worker: a locked store must never freeze the service (or its `status`).
        return await asyncio.to_thread(lambda: history_inventory(self.bars, symbols_by_conid(self.bars), symbol))

    @rpcmethod
    async def history_read(self, symbol: str, bar_size: str = "1 min", start: dt.datetime | None = None,
                           end: dt.datetime | None = None, source: str | None = None) -> pandas.DataFrame:
        """Stored bars of one symbol in [start, end) as a DataFrame (UTC DatetimeIndex)."""
        return await asyncio.to_thread(
            lambda: self.bars.read(self._conid_for(symbol), bar_size, start=start, end=end, source=source))

    @rpcmethod
    async def history_gaps(self, symbol: str, bar_size: str = "1 min", start: dt.date | None = None,
                           end: dt.date | None = None) -> dict[str, Any]:
        """Missing sessions/bars of a stored series against its exchange's calendar."""
        return await asyncio.to_thread(series_gaps, self.bars, symbol, bar_size, start, end)

    # ----------------------------------------------------------------- universes
    @rpcmethod
    async def universe_list(self) -> list[dict[str, Any]]:
        """Every universe with its symbol count."""
        return await asyncio.to_thread(self.universes.names)

    @rpcmethod
    async def universe_show(self, name: str) -> list[dict[str, Any]]:
        """Members of a universe."""
        import dataclasses

        return [dataclasses.asdict(m) for m in await asyncio.to_thread(self.universes.members, name)]

    @rpcmethod
    async def universe_create(self, name: str, symbols: list[str] | None = None,
                              description: str = "") -> dict[str, Any]:
        """Create a universe, optionally with symbols."""
        from trader.data.universes import _member

        members = [_member(s) for s in symbols or []]
        await asyncio.to_thread(lambda: self.universes.create(name, members, description=description))
        return {"name": name, "symbols": len(symbols or [])}

    @rpcmethod
    async def universe_add(self, name: str, symbols: list[str]) -> dict[str, Any]:
        """Add symbols to a universe."""
        return {"name": name, "added": await asyncio.to_thread(self.universes.add_symbols, name, symbols)}

    @rpcmethod
    async def universe_import(self, name: str, csv_text: str) -> dict[str, Any]:
        """Import CSV rows (all or none) into a universe, creating it if needed."""
        return {"name": name, "added": await asyncio.to_thread(self.universes.import_csv, name, csv_text)}

    @rpcmethod
    async def universe_remove(self, name: str, symbols: list[str]) -> dict[str, Any]:
        """Remove symbols from a universe."""
        return {"name": name, "removed": await asyncio.to_thread(self.universes.remove, name, symbols)}

    @rpcmethod
    async def universe_delete(self, name: str) -> dict[str, Any]:
        """Delete a universe."""
        await asyncio.to_thread(self.universes.delete, name)
        return {"name": name, "deleted": True}


def history_inventory(bars: Any, symbols: dict[int, Any], symbol: str | None = None) -> list[dict[str, Any]]:
    """Inventory rows for `history list` (shared by the service and direct store reads)."""
    rows = []
    for info in bars.inventory():
        known = symbols.get(info.conid)
        name = known.symbol if known else str(info.conid)
        if symbol is not None and name != symbol.upper():
            continue
        rows.append({"symbol": name, "conid": info.conid, "bar_size": info.bar_size, "source": info.source,
                     "first": info.first, "last": info.last, "bars": info.bar_count})
    return rows


def series_gaps(bars: Any, symbol: str, bar_size: str, start: dt.date | None = None,
                end: dt.date | None = None) -> dict[str, Any]:
    """Gaps of one stored series (shared by the service and direct store reads)."""
    import dataclasses

    from trader.data.bars import lookup_symbol
    from trader.data.gaps import calendar_for, find_gaps

    found = lookup_symbol(bars, symbol)
    if not found:
        raise ContractNotFound(f"no stored bars for {symbol}")
    info = found[0]
    calendar = calendar_for(info.primary_exchange or info.exchange)
    frame = bars.read(info.conid, bar_size)
    gaps = find_gaps(frame.index, bar_size, calendar=calendar, start=start, end=end)
    return {"symbol": info.symbol, "bar_size": bar_size, "calendar": calendar, "bars": len(frame),
            "missing_sessions": sum(1 for g in gaps if g.kind == "session"),
            "missing_bars": sum(g.missing_bars for g in gaps), "gaps": [dataclasses.asdict(g) for g in gaps]}


def _tz(ib_zone: str | None) -> str:
    """IB's zone names (``US/Eastern``, ``EST``…) as IANA names pandas and exchange_calendars understand."""
    mapping = {"US/Eastern": "America/New_York", "EST": "America/New_York", "EST5EDT": "America/New_York",
               "US/Central": "America/Chicago", "CST": "America/Chicago", "US/Pacific": "America/Los_Angeles"}
    return mapping.get(ib_zone or "", ib_zone or "America/New_York")


def main(argv: list[str] | None = None) -> int:
    return run_service(DataService, argv)


if __name__ == "__main__":
    sys.exit(main())
