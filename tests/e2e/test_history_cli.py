"""history and universe CLI end to end: ``mmr --json …`` against data_service and the simulated gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trader.testing import Platform, mmr, platform_env


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    home = tmp_path_factory.mktemp("mmr_history")
    env = platform_env(home)
    env.pop("MASSIVE_API_KEY", None)  # never reach the real vendor from a test
    p = Platform(home, env, with_gateway=True)
    try:
        p.start()
        yield p
    finally:
        p.stop()


def _ok(plat: Platform, *args: str, timeout: float = 60) -> Any:
    r = mmr(plat.env, "--json", *args, timeout=timeout)
    assert r.returncode == 0, f"mmr {' '.join(args)} failed: {r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def _err(plat: Platform, *args: str) -> dict[str, Any]:
    r = mmr(plat.env, "--json", *args)
    assert r.returncode != 0, r.stdout
    return json.loads(r.stdout)["error"]


def test_universe_crud_and_csv_import(plat: Platform, tmp_path: Path) -> None:
    names = {u["name"]: u for u in _ok(plat, "universe", "list")}
    assert names["demo"]["symbols"] >= 5 and names["sp500"]["symbols"] > 100
    _ok(plat, "universe", "create", "tech", "AAPL", "MSFT")
    assert _ok(plat, "universe", "add", "tech", "NVDA", "AAPL")["added"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,sec_type\nAMZN,STK\nMETA,BOGUS\n")
    err = _err(plat, "universe", "import", "tech", str(bad))
    assert err["type"] == "InvalidUniverse" and "line 3" in err["message"]
    assert [m["symbol"] for m in _ok(plat, "universe", "show", "tech")] == ["AAPL", "MSFT", "NVDA"]  # no AMZN
    good = tmp_path / "good.csv"
    good.write_text("symbol\nAMZN\nMETA\n")
    assert _ok(plat, "universe", "import", "tech", str(good))["added"] == 2
    assert _ok(plat, "universe", "remove", "tech", "META")["removed"] == 1
    assert len(_ok(plat, "universe", "show", "tech")) == 4
    _ok(plat, "universe", "delete", "tech")
    assert _err(plat, "universe", "show", "tech")["type"] == "UniverseNotFound"


def test_history_download_is_idempotent_and_listed(plat: Platform, tmp_path: Path) -> None:
    first = _ok(plat, "history", "ib", "--symbol", "AAPL", "--bar_size", "1 hour", "--prev_days", "3")
    assert first["bars_new"] > 0 and not first["errors"]
    again = _ok(plat, "history", "ib", "--symbol", "AAPL", "--bar_size", "1 hour", "--prev_days", "3")
    stored = _ok(plat, "history", "list", "--symbol", "AAPL")
    # The platform's broker is the simulated gateway: its bars are tagged apart from market data.
    assert [(r["bar_size"], r["source"]) for r in stored] == [("1 hour", "ib_sim")]
    run = _ok(plat, "backtest", "-s", "ma_crossover.py", "--symbol", "AAPL", "--bar-size", "1 hour", "--days", "3")
    assert run["provenance"] == "simulated_gateway_history" and run["data"] == {str(stored[0]["conid"]): "stored"}
    assert any("SIMULATED gateway" in w for w in run["warnings"]), run["warnings"]
    assert stored[0]["bars"] == first["bars_new"] + again["bars_new"]
    read = _ok(plat, "history", "read", "--symbol", "AAPL", "--bar_size", "1 hour")
    assert read["count"] == stored[0]["bars"] and read["bars"][0]["ts"] < read["bars"][-1]["ts"]
    out = tmp_path / "aapl.csv"
    exported = _ok(plat, "history", "export", "--symbol", "AAPL", "--bar_size", "1 hour", "--format", "csv",
                   "--output", str(out))
    assert exported["bars"] == read["count"] and len(out.read_text().splitlines()) == read["count"] + 1


def test_history_update_universe(plat: Platform) -> None:
    _ok(plat, "universe", "create", "pair", "MSFT", "NVDA")
    summary = _ok(plat, "history", "update", "--universe", "pair", "--bar_size", "1 day", "--prev_days", "30")
    assert summary["symbols"] == 2 and not summary["errors"] and summary["bars_new"] > 0
    resolved = _ok(plat, "universe", "show", "pair")
    assert all(m["conid"] for m in resolved)  # resolved conIds are cached in the universe
    again = _ok(plat, "history", "update", "--universe", "pair", "--bar_size", "1 day")
    assert again["bars_new"] <= 2  # only what is missing since the last stored bar


def test_unknown_universe_and_symbol_errors(plat: Platform) -> None:
    assert _err(plat, "history", "ib", "--universe", "nope")["type"] == "UniverseNotFound"
    assert _err(plat, "history", "read", "--symbol", "ZZZZ")["type"] == "ContractNotFound"


def test_history_gaps_of_a_downloaded_series(plat: Platform) -> None:
    _ok(plat, "history", "ib", "--symbol", "JPM", "--bar_size", "1 day", "--prev_days", "40")
    gaps = _ok(plat, "history", "gaps", "--symbol", "JPM", "--bar_size", "1 day")
    assert gaps["calendar"] == "XNYS" and gaps["bars"] > 20
    assert gaps["missing_bars"] == sum(g["missing_bars"] for g in gaps["gaps"])


def test_massive_without_a_key_is_a_clear_error(plat: Platform) -> None:
    err = _err(plat, "history", "massive", "--symbol", "AAPL")
    assert err["type"] == "ConfigError" and "MASSIVE_API_KEY" in err["message"]
