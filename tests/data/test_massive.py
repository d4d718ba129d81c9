"""Massive.com client against a local HTTP server replaying the documented aggregates format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from trader.data.bars import BarStore
from trader.data.massive import MassiveClient, MassiveError, api_key
from trader.data.massive_fake import FakeMassive, serve_fake_massive
from trader.errors import ConfigError


@pytest.fixture
def server() -> Iterator[str]:
    with serve_fake_massive() as url:
        yield url


def test_pagination_and_ingest(server: str, tmp_path) -> None:  # noqa: ANN001
    with MassiveClient("k", base_url=server) as client:
        frame = client.aggregates("aapl", "1 min", dt.date(2024, 11, 29), dt.date(2024, 11, 29))
    assert len(frame) == 6 and frame.index.tz is not None and frame.index.is_monotonic_increasing
    assert frame.index[0] == dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC)
    assert list(frame["volume"]) == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    assert "/v2/aggs/ticker/AAPL/range/1/minute/2024-11-29/2024-11-29" in FakeMassive.requests[0]
    assert "cursor=page2" in FakeMassive.requests[1]
    assert not any("apiKey" in r or "=k" in r for r in FakeMassive.requests)  # the key travels in a header
    store = BarStore.open(tmp_path)
    assert store.ingest(265598, "1 min", "massive", frame) == 6
    assert store.ingest(265598, "1 min", "massive", frame) == 0


def test_429_is_retried_with_backoff(server: str) -> None:
    FakeMassive.throttle = True
    waits: list[float] = []
    with MassiveClient("k", base_url=server, sleep=waits.append) as client:
        frame = client.aggregates("AAPL", "1 day", dt.date(2024, 11, 1), dt.date(2024, 11, 29))
    assert len(frame) == 6 and len(waits) == 1 and waits[0] >= 1
    assert client.requests == 3


def test_errors_are_clear(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MassiveClient("wrong", base_url=server) as client, pytest.raises(MassiveError, match="401: Unknown API Key"):
        client.aggregates("AAPL", "1 day", dt.date(2024, 11, 1), dt.date(2024, 11, 29))
    with MassiveClient("k", base_url=server) as client, pytest.raises(MassiveError, match="Ticker not found"):
        client.aggregates("NOPE", "1 day", dt.date(2024, 11, 1), dt.date(2024, 11, 29))
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="MASSIVE_API_KEY"):
        api_key("")
    monkeypatch.setenv("MASSIVE_API_KEY", "from-env")
    assert api_key("") == "from-env"
