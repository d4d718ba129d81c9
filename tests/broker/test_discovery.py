"""IB discovery calls fail loudly: a source that does not answer is SourceUnavailable, never an empty list."""

from __future__ import annotations

import asyncio
from datetime import date
from types import SimpleNamespace

import pytest

from trader.broker import discovery as ibd
from trader.errors import ContractNotFound, SourceUnavailable


class SilentIB:
    """An IB that accepts requests and never answers."""

    async def reqTickersAsync(self, *contracts):  # noqa: N802 - ib_async's name
        await asyncio.sleep(3600)

    async def reqScannerDataAsync(self, sub):  # noqa: N802
        await asyncio.sleep(3600)

    async def reqNewsProvidersAsync(self):  # noqa: N802
        return []


class NoResolver:
    async def resolve(self, symbol, *a, **kw):
        raise ContractNotFound(f"no contract matches {symbol}")


def test_silent_snapshot_and_scanner_are_source_unavailable():
    contract = SimpleNamespace(conId=1, symbol="AAPL")
    with pytest.raises(SourceUnavailable, match="no snapshot"):
        asyncio.run(ibd.snapshots(SilentIB(), [contract], timeout=0.05))
    with pytest.raises(SourceUnavailable, match="did not answer"):
        asyncio.run(ibd.scanner(SilentIB(), "gainers", timeout=0.05))


def test_nothing_resolvable_is_an_error_and_no_providers_is_too():
    with pytest.raises(SourceUnavailable, match="no data for any of the 2 symbols"):
        asyncio.run(ibd.market_rows(SilentIB(), NoResolver(), ["XX", "YY"], ibd.DailyBarCache(), date(2026, 3, 2)))
    with pytest.raises(SourceUnavailable, match="no news providers"):
        asyncio.run(ibd.news(SilentIB(), NoResolver(), ["AAPL"]))


def test_daily_bar_cache_is_per_day():
    cache = ibd.DailyBarCache()
    cache.put(7, date(2026, 3, 2), [{"close": 1.0}])
    assert cache.get(7, date(2026, 3, 2)) == [{"close": 1.0}]
    assert cache.get(7, date(2026, 3, 3)) is None and cache.get(8, date(2026, 3, 2)) is None
