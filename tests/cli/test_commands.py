"""`mmr commands`: compact by default, exact per command, every parameter described (issue 14)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from trader.tools.tokens import conservative_tokens


def run(*args: str) -> tuple[int, dict]:
    from trader.cli.core import AppContext
    from trader.mmr_cli import run as mmr_run

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = mmr_run(["--json", *args], AppContext(json=True))
    return code, json.loads(buf.getvalue())


@pytest.fixture(autouse=True)
def _home(mmr_home):
    return mmr_home


def test_the_listing_is_compact_and_names_every_command():
    code, doc = run("commands")
    assert code == 0 and doc["cols"][:3] == ["name", "usage", "help"]
    names = {row[0] for row in doc["commands"]}
    assert {"status", "commands", "logs", "reconcile", "market-hours", "verify", "snapshot"} <= names
    tokens = conservative_tokens(doc)
    assert tokens <= 6000, f"`mmr --json commands` costs ~{tokens} tokens (conservative estimate)"
    aliases = {row[0]: row[3] for row in doc["commands"] if len(row) > 3}
    assert "p" in aliases["portfolio"] and "snap" in aliases["snapshot"] and "bt" in aliases["backtest"]


def test_one_command_in_full_with_exact_types():
    code, doc = run("commands", "buy")
    [buy] = doc["commands"]
    props = buy["parameters"]["properties"]
    assert props["bracket"]["type"] == "array" and props["bracket"]["items"] == {"type": "number"}
    assert props["bracket"]["minItems"] == props["bracket"]["maxItems"] == 2
    assert props["symbol"]["x-positional"] and props["symbol"]["description"]
    _, doc = run("commands", "snap")  # an alias names its command
    assert [c["name"] for c in doc["commands"]] == ["snapshot"]
    _, doc = run("commands", "backtests")  # a group: the group and each subcommand
    assert {"backtests", "backtests show", "backtests archive"} <= {c["name"] for c in doc["commands"]}
    _, status = run("commands", "status")
    assert status["commands"][0]["parameters"]["properties"]["timeout"]["exclusiveMinimum"] == 0


def test_unknown_command_name_is_a_usage_error():
    code, doc = run("commands", "stauts")
    assert code == 2 and "status" in doc["error"]["message"]


def test_every_parameter_has_a_description_and_no_unsupported_sec_type():
    _, doc = run("commands", "--full")
    missing = [(c["name"], name) for c in doc["commands"]
               for name, schema in c["parameters"]["properties"].items() if not schema.get("description")]
    assert missing == []
    sec_types = [c["parameters"]["properties"]["sec_type"] for c in doc["commands"]
                 if "sec_type" in c["parameters"]["properties"]]
    assert sec_types and not [s for s in sec_types if "ETF" in json.dumps(s)]  # IB has no ETF sec type: ETFs are STK
