"""The agent's CLI (issue 14): exact errors, bounded newest-first lists, compact status, validated inputs.

One platform (simulated gateway + services) for the whole module. Most commands run in-process through
``trader.mmr_cli.run`` (the same code path as the ``mmr`` script, without a Python start-up per call) with
``os.environ`` pointed at the platform; a few run as a subprocess where the process boundary is the point.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import click
import pytest

from trader.testing import eventually, mmr, running_platform

# Python's own exception types: a command that lets one of these out on a bad argument has a bug (issue 14).
BUILTIN_ERRORS = {name for name in dir(__builtins__ if isinstance(__builtins__, dict) else __builtins__)
                  if isinstance(getattr(__import__("builtins"), name, None), type)
                  and issubclass(getattr(__import__("builtins"), name), BaseException)}


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    # A strategies directory of its own: the argument fuzz runs `strategies create x` and must not write into
    # the checkout's strategies/.
    strategies = tmp_path_factory.mktemp("agent_cli_strategies")
    with running_platform(tmp_path_factory.mktemp("agent_cli"), with_gateway=True, broker_ready=True,
                          STRATEGIES_DIRECTORY=str(strategies)) as p:
        yield p


@pytest.fixture(autouse=True)
def _platform_env(plat, monkeypatch):
    """In-process commands read their config from os.environ: point it at the platform (after the suite's
    autouse fixture has cleared the MMR variables)."""
    for key, value in plat.env.items():
        monkeypatch.setenv(key, value)


def run(*args: str) -> tuple[int, Any]:
    """``mmr --json ARGS`` in-process: (exit code, the one JSON document printed)."""
    from trader.cli.core import AppContext
    from trader.mmr_cli import run as mmr_run

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = mmr_run(["--json", *args], AppContext(json=True))
    out = buf.getvalue().strip()
    return code, json.loads(out.splitlines()[-1]) if out else None


def ok(*args: str) -> Any:
    code, doc = run(*args)
    assert code == 0, (args, doc)
    return doc


# --------------------------------------------------------------------------- lists: newest first, bounded
def test_events_are_newest_first_and_bounded(plat):
    # The start-up events (broker state, connections) are written by the audit writer a moment after the
    # services report ready: wait for at least three rather than assume they are there.
    everything = eventually(lambda: (lambda es: es if len(es) >= 3 else None)(ok("events", "--limit", "1000")))
    ids = [e["id"] for e in everything]
    assert len(ids) >= 3 and ids == sorted(ids, reverse=True)
    assert [e["id"] for e in ok("events", "--limit", "3")] == ids[:3]  # the newest 3, not the oldest
    assert [e["id"] for e in ok("events", "--limit", "3", "--oldest-first")] == sorted(ids)[:3]
    assert ok("events", "--since", "2099-01-01") == []
    assert [e["id"] for e in ok("events", "--since", "1d", "--limit", "1000")] == ids


def test_unknown_event_kind_is_an_error_naming_the_known_kinds(plat):
    code, doc = run("events", "--kind", "nosuchkind")
    assert code == 1 and doc["error"]["type"] == "UnknownEventKind"
    assert "broker_state" in doc["error"]["message"] and "order_submitted" in doc["error"]["message"]
    assert ok("events", "--kind", "fill") == []  # documented, just not happened yet: a real empty answer


def test_bad_since_is_a_usage_error(plat):
    code, doc = run("trades", "--since", "yesterday-ish")
    assert code == 2 and doc["error"]["type"] == "BadParameter" and "look-back" in doc["error"]["message"]


def test_trades_and_orders_are_newest_first(plat):
    for sym in ("KO", "PEP"):
        ok("buy", sym, "--quantity", "1")
    fills = ok("trades", "--limit", "2")
    assert [f["symbol"] for f in fills] == ["PEP", "KO"]
    assert [f["symbol"] for f in ok("trades", "--limit", "1")] == ["PEP"]
    assert ok("trades", "--since", "2099-01-01") == []
    orders = ok("orders", "--limit", "5")
    assert [o["order_id"] for o in orders] == sorted((o["order_id"] for o in orders), reverse=True)


# --------------------------------------------------------------------------- status
def test_status_is_compact_with_detail_on_request(plat):
    compact = ok("status")
    trader = next(s for s in compact["services"] if s["service"] == "trader_service")
    assert "broker" not in trader["details"] and compact["broker"]["ready"] is True  # the broker block once
    assert isinstance(compact["broker"]["recent_errors"], int)  # a count, not every IB message
    assert "endpoints" not in trader and "address" not in trader
    full = ok("status", "--detail")
    assert isinstance(full["broker"]["recent_errors"], list) and "endpoints" in full["services"][0]
    assert len(json.dumps(compact)) < len(json.dumps(full))


def test_json_without_a_command_is_a_usage_error(plat):
    res = mmr(plat.env, "--json")
    assert res.returncode == 2
    assert json.loads(res.stdout)["error"]["type"] == "UsageError"


# --------------------------------------------------------------------------- bad arguments: never Python types
# Commands the fuzz leaves out, and why: they start processes, stream until stopped, write key files, or run
# long computations on whatever they are given (their arguments are typed by click all the same).
FUZZ_SKIP = {"up", "down", "listen", "watch", "keys", "backtest", "bt-sweep", "sweep", "backtests walk-forward",
             "history"}
BAD_VALUES = ("", "x", "-1", "1e309", "a/../b")


def _fuzz_lines() -> list[list[str]]:
    from trader.cli.meta import walk_commands
    from trader.mmr_cli import cli

    lines = []
    for c in walk_commands(cli, click.Context(cli)):
        name = c["name"].split()
        if name[0] in FUZZ_SKIP or " ".join(name[:2]) in FUZZ_SKIP:
            continue
        props = c["parameters"]["properties"]
        positional = [k for k, s in props.items() if s.get("x-positional")]
        for key, schema in props.items():
            if schema.get("type") == "boolean":
                continue
            for bad in BAD_VALUES:
                if schema.get("x-positional"):
                    lines.append([*name, *(bad if k == key else "ZZZZ" for k in positional)])
                else:
                    lines.append([*name, *("ZZZZ" for _ in positional), schema["x-flags"][0], bad])
    return lines


def test_bad_arguments_give_usage_or_domain_errors_never_python_types(plat, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bad value may be a valid file name (`--chart -1`): never write into the checkout
    found = []
    for line in _fuzz_lines():
        code, doc = run(*line)
        if code == 0:
            continue
        assert isinstance(doc, dict) and "error" in doc, (line, doc)
        kind = doc["error"]["type"]
        if code != 2 and kind in BUILTIN_ERRORS:
            found.append((line, kind, doc["error"]["message"][:120]))
    assert found == []


# --------------------------------------------------------------------------- validated inputs
def test_group_and_universe_refuse_symbols_the_broker_does_not_know(plat):
    ok("group", "create", "energy", "--budget", "10")
    code, doc = run("group", "add", "energy", "XOM", "FOOBAR")
    assert code == 1 and doc["error"]["type"] == "UnknownSymbol" and "FOOBAR" in doc["error"]["message"]
    assert ok("group", "show", "energy")["symbols"] == []  # nothing was added, not even XOM
    assert ok("group", "add", "energy", "XOM")["symbols"] == ["XOM"]
    code, doc = run("universe", "create", "tech2", "AAPL", "FOOBAR")
    assert code == 1 and doc["error"]["type"] == "UnknownSymbol"
    ok("universe", "create", "tech2", "AAPL")
    code, doc = run("universe", "add", "tech2", "FOOBAR")
    assert code == 1 and doc["error"]["type"] == "UnknownSymbol"
    assert [m["symbol"] for m in ok("universe", "show", "tech2")] == ["AAPL"]


@pytest.mark.parametrize("name", ["my strategy", "../evil", "a/../b", "x" * 65, ""])
def test_deploy_names_are_one_safe_word(plat, name):
    code, doc = run("strategies", "deploy", "no-such-run", "--name", name)
    assert code == 2 and "letters, digits" in doc["error"]["message"]


def test_backtest_params_are_checked_against_the_declared_ones():
    from trader.cli.backtest import check_params
    from trader.errors import BacktestError
    from trader.strategy.api import Strategy

    class Cross(Strategy):
        FAST = 10
        SLOW = 30
        STOP = 0.05
        LONG_ONLY = True

    assert check_params(Cross, {"FAST": "50", "STOP": "0.1", "LONG_ONLY": "no"}) == {
        "FAST": 50, "STOP": 0.1, "LONG_ONLY": False}
    with pytest.raises(BacktestError) as err:
        check_params(Cross, {"fast": "5", "SLOW": "ten", "FAST": "5.5", "STOP": "nan"})
    msg = str(err.value)
    assert "unknown parameter 'fast' (did you mean FAST?)" in msg
    assert "SLOW must be int" in msg and "FAST must be int" in msg and "STOP must be float" in msg
    assert "declared parameters: FAST=10, SLOW=30" in msg

    class Ordered(Cross):
        @classmethod
        def param_problems(cls, params):
            return [] if params["FAST"] < params["SLOW"] else ["FAST must be below SLOW"]

    # names and types right, values wrong together: the strategy's own rule, on the defaults plus the overrides
    assert check_params(Ordered, {"FAST": "20"}) == {"FAST": 20}
    with pytest.raises(BacktestError, match="FAST must be below SLOW"):
        check_params(Ordered, {"FAST": "50", "SLOW": "10"})
    with pytest.raises(BacktestError, match="FAST must be below SLOW"):
        check_params(Ordered, {"FAST": "40"})  # against the default SLOW=30
    assert check_params(Cross, {"FAST": "50", "SLOW": "10"}) == {"FAST": 50, "SLOW": 10}  # no rule declared


# --------------------------------------------------------------------------- ops
def test_logs_tail_and_grep(plat):
    doc = ok("logs", "trader_service", "--lines", "3")
    lines = doc["logs"]["trader_service"]["lines"]
    assert 1 <= len(lines) <= 3
    grepped = ok("logs", "--grep", "trader_service|data_service", "--lines", "5")["logs"]
    assert grepped and all(len(body["lines"]) <= 5 for body in grepped.values())
    assert run("logs", "nosuchservice")[0] == 2
    assert run("logs", "--grep", "(")[0] == 2


def test_reconcile_reports_the_differences(plat):
    doc = ok("reconcile")
    assert set(doc) == {"book", "orders", "differences"} and isinstance(doc["differences"], bool)
    assert ok("events", "--kind", "reconciled", "--limit", "1")[0]["kind"] == "reconciled"


def test_market_hours():
    from datetime import UTC, datetime

    from trader.cli.ops import market_hours_at

    monday_noon_ny = datetime(2025, 3, 3, 17, 0, tzinfo=UTC)
    d = market_hours_at("NYSE", monday_noon_ny)
    assert (d["exchange"], d["open"], d["extended_open"]) == ("XNYS", True, True)
    assert d["next_close"].startswith("2025-03-03T21:00") and d["next_open"].startswith("2025-03-04T14:30")
    saturday = market_hours_at("XNYS", datetime(2025, 3, 8, 17, 0, tzinfo=UTC))
    assert not saturday["open"] and saturday["next_open"].startswith("2025-03-10T13:30")  # DST began Mar 9
    with pytest.raises(click.UsageError):
        market_hours_at("NOWHERE", monday_noon_ny)


def test_verify_passes_on_a_healthy_install_and_fails_on_a_foreign_port(plat, monkeypatch):
    doc = ok("verify")
    assert doc["ok"] and {c["check"] for c in doc["checks"]} >= {"config", "broker", "clock", "data store",
                                                                 "port trader_service"}
    import socket

    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        monkeypatch.setenv("DATA_RPC_PORT", str(foreign.getsockname()[1]))
        code, doc = run("verify")
    assert code == 1 and not doc["ok"]
    bad = [c for c in doc["checks"] if not c["ok"]]
    assert [c["check"] for c in bad] == ["port data_service"] and "not data_service" in bad[0]["detail"]


# --------------------------------------------------------------------------- many quotes in one call
def test_snapshot_of_many_symbols(plat):
    doc = ok("snap", "AAPL", "MSFT", "NVDA", "FOOBAR")
    assert [q["symbol"] for q in doc["quotes"]] == ["AAPL", "MSFT", "NVDA"]
    assert list(doc["missing"]) == ["FOOBAR"]
    for q in doc["quotes"]:
        assert q["last"] > 0 and set(q) == {"symbol", "last", "change", "change_pct", "volume", "atr_pct"}
        if q["change"] is not None:
            assert q["change_pct"] == pytest.approx(q["change"] / (q["last"] - q["change"]) * 100, abs=0.01)
    assert "bid" in ok("snapshot", "AAPL")  # one symbol: the full quote, as before


def test_quote_row_atr_and_change():
    from trader.discovery_handlers import quote_row
    from trader.tools.ideas import MarketRow

    closes = tuple(100.0 + i for i in range(20))
    row = MarketRow("X", last=121.0, prev_close=119.0, volume=1e6, closes=closes,
                    highs=tuple(c + 1 for c in closes), lows=tuple(c - 1 for c in closes))
    q = quote_row(row)
    assert (q["change"], q["change_pct"]) == (2.0, 1.68)
    assert q["atr_pct"] == pytest.approx(2.0 / 121.0 * 100, abs=0.01)  # every true range is 2


# --------------------------------------------------------------------------- conveniences
def test_backtest_by_symbol_and_conids_with_spaces(plat, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("STRATEGIES_DIRECTORY", str(Path(__file__).parents[2] / "strategies"))
    aapl = ok("resolve", "AAPL")["con_id"]
    by_symbol = ok("bt", "-s", "ma_crossover.py", "--symbol", "AAPL", "--days", "120")
    assert by_symbol["conids"] == [aapl]
    spaced = ok("backtest", "-s", "ma_crossover.py", "--conids", f"{aapl}, 756733", "--days", "120")
    assert spaced["conids"] == [aapl, 756733]
    code, doc = run("backtest", "-s", "ma_crossover.py", "--conids", "AAPL")
    assert code == 2 and "whole numbers" in doc["error"]["message"]
    code, doc = run("backtest", "-s", "ma_crossover.py", "--param", "FAST=fast")
    assert code == 1 and doc["error"]["type"] == "BacktestError" and "FAST must be int" in doc["error"]["message"]
    code, doc = run("backtest", "-s", "ma_crossover.py", "--symbol", "AAPL", "--param", "FAST=50", "--param", "SLOW=10")
    assert code == 1 and doc["error"]["type"] == "BacktestError" and "below SLOW" in doc["error"]["message"]
