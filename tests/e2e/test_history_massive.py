"""data_service without a broker: ``history massive`` end to end against the local Massive.com fake
(pagination, idempotent re-download), and every IB-backed command failing clearly while the store stays
readable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trader.data.bars import BarStore, BarSymbol, remember_symbol
from trader.data.massive_fake import FakeMassive, serve_fake_massive
from trader.testing import Platform, mmr, platform_env, running_platform


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """Services up, no gateway listening (the broker is down), Massive pointed at the local fake."""
    home = tmp_path_factory.mktemp("mmr_offline")
    # AAPL's conId is known from an earlier download, so Massive needs no broker to place its bars.
    remember_symbol(BarStore.open(home / "data"), BarSymbol(265598, "AAPL", primary_exchange="NASDAQ"))
    with serve_fake_massive() as url, running_platform(home, MASSIVE_API_KEY="k", MASSIVE_BASE_URL=url) as p:
        yield p


def run(p: Platform, *args: str) -> tuple[int, Any]:
    res = mmr(p.env, "--json", *args, timeout=60)
    return res.returncode, json.loads(res.stdout.strip().splitlines()[-1])


def test_history_massive_downloads_all_pages_once(offline):
    code, first = run(offline, "history", "massive", "--symbol", "AAPL", "--bar_size", "1 min", "--prev_days", "1")
    assert code == 0, first
    assert first["bars_new"] == 6 and first["requests"] == 2 and not first["errors"], first
    assert any("cursor=page2" in r for r in FakeMassive.requests)
    code, again = run(offline, "history", "massive", "--symbol", "AAPL", "--bar_size", "1 min", "--prev_days", "1")
    assert code == 0 and again["bars_new"] == 0, again
    _, listed = run(offline, "history", "list", "--symbol", "AAPL")
    assert [(r["source"], r["bars"]) for r in listed] == [("massive", 6)]
    _, read = run(offline, "history", "read", "--symbol", "AAPL", "--bar_size", "1 min")
    assert read["count"] == 6


def test_broker_down_is_a_clear_error_and_the_service_stays_up(offline):
    code, doc = run(offline, "history", "ib", "--symbol", "MSFT", "--bar_size", "1 day", "--prev_days", "5")
    assert code != 0 and doc["error"]["type"] == "ServiceUnavailable", doc
    assert "cannot reach the broker" in doc["error"]["message"]
    # Universe edits only touch the store (conIds are resolved at the first download): they work without it.
    code, doc = run(offline, "universe", "add", "demo", "ZZZZ")
    assert code == 0 and doc["added"] == 1, doc
    _, members = run(offline, "universe", "show", "demo")
    assert "ZZZZ" in {m["symbol"] for m in members}
    code, status = run(offline, "status")
    data = next(s for s in status["services"] if s["service"] == "data_service")
    assert data["up"] and data["details"]["broker_connected"] is False, data


def test_universes_read_from_the_store_when_data_service_is_down(tmp_path):
    env = {**platform_env(tmp_path), "MMR_HOME": str(tmp_path)}  # nothing running for this home
    res = mmr(env, "--json", "universe", "list")
    assert res.returncode == 0, res.stdout
    assert {u["name"] for u in json.loads(res.stdout)} >= {"demo", "sp500"}
    shown = json.loads(mmr(env, "--json", "universe", "show", "demo").stdout)
    assert "AAPL" in {m["symbol"] for m in shown}
    missing = mmr(env, "--json", "universe", "show", "nope")
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["type"] == "UniverseNotFound"
