"""The REPL's completer (from the same registry as `mmr --json commands`) and the Rich tables it shows for
psnap, pdiff, prisk and session."""

from __future__ import annotations

import io

from rich.console import Console

from trader.cli.repl import complete, make_completer, split_line
from trader.cli.risk import render_diff, render_risk, render_session, render_snapshot
from trader.mmr_cli import ALIASES, COMMANDS


# --------------------------------------------------------------------------- completion
def test_first_word_completes_commands_and_aliases():
    assert "buy" in complete([], "bu")
    assert complete([], "prisk") == ["prisk"]
    everything = set(complete([], ""))
    assert set(COMMANDS) | set(ALIASES) <= everything and "exit" in everything


def test_flags_of_the_command_being_typed():
    assert complete(["buy"], "--q") == ["--quantity"]
    flags = complete(["buy", "AAPL"], "--")
    assert {"--limit", "--bracket", "--tif", "--request-id"} <= set(flags)
    assert "--brief" not in flags  # another command's flag
    assert "--quantity" not in complete(["buy", "AAPL", "--quantity", "3"], "--")  # given once already
    assert complete(["--json", "prisk"], "--d") == ["--detail"]  # the global flag is skipped; aliases resolve


def test_group_subcommands_and_option_choices():
    assert {"show", "--brief", "--all", "--limit"} <= set(complete(["proposals"], ""))
    assert "show" not in complete(["proposals", "show"], "")
    assert complete(["buy", "AAPL", "--tif"], "") == ["DAY", "GTC", "IOC"]
    assert complete(["proposals", "--status"], "pe") == ["PENDING"]
    assert complete(["nosuchcommand"], "") == []


def test_status_repeatable_flag_stays_offered():
    assert "--status" in complete(["proposals", "--status", "FAILED"], "--s")


def test_split_line_and_prompt_toolkit_completer():
    assert split_line("buy AAPL --qu") == (["buy", "AAPL"], "--qu")
    assert split_line("buy AAPL ") == (["buy", "AAPL"], "")
    assert split_line('propose AAPL --reasoning "a b" --gr') == (["propose", "AAPL", "--reasoning", "a b"], "--gr")
    assert split_line('propose AAPL --reasoning "a b')[1] == "b"  # an open quote does not break completion
    from prompt_toolkit.document import Document

    got = list(make_completer().get_completions(Document("sell TSLA --sh"), None))
    assert [(c.text, c.start_position) for c in got] == [("--short", -4)]


# --------------------------------------------------------------------------- tables
def draw(render, data) -> str:
    buf = io.StringIO()
    render(data, Console(file=buf, width=120, color_system=None))
    return buf.getvalue()


SNAP = {"t": "2026-03-02T15:30Z", "ccy": "USD", "nlv": 100000, "cash": 50000, "day": -120, "day%": -0.12,
        "upnl": 900, "n": 2, "mv": [["AAPL", -100, -1.1]], "cols": ["sym", "qty", "px", "val", "upnl"],
        "pos": [["AAPL", 10, 190.5, 1905, 400], ["MSFT", 5, 400, 2000, 500]],
        "ocols": ["id", "sym", "side", "qty", "type", "lmt", "st", "filled"],
        "ord": [[7, "NVDA", "BUY", 3, "LMT", 100, "open", 0]]}


def test_snapshot_is_drawn_as_tables():
    out = draw(render_snapshot, SNAP)
    assert "Positions" in out and "Orders" in out and "Top movers today" in out
    assert "sym" in out and "upnl" in out and "MSFT" in out and "NVDA" in out
    assert "{" not in out  # a table, not JSON


def test_diff_is_drawn_as_a_table_of_changes():
    diff = {"since": "2026-03-02T15:00Z", "t": "2026-03-02T15:30Z", "changed": True, "nlv": [100000, 101000],
            "day": [0, 1000], "new": [["AMD", 10, 120, 1200]], "filled": [[7, "AMD", "BUY", 10]], "gone": [3]}
    out = draw(render_diff, diff)
    assert "change" in out and "detail" in out and "new [sym, qty, px, val]" in out and "AMD" in out
    assert "100,000 → 101,000" in out
    assert "nothing changed" in draw(render_diff, {"changed": False, "msg": "nothing changed", "since": "x"})


def test_risk_is_drawn_with_positions_groups_and_clusters():
    full = {"summary": "net long 60.0% of NLV", "gross_pct": 60.0, "net_pct": 60.0, "long_pct": 60.0,
            "short_pct": 0.0, "hhi": 0.5, "warnings": ["AAPL is 40.0% of NLV (critical: above 15%)"],
            "positions": [{"symbol": "AAPL", "value": 40000.0, "weight_pct": 40.0, "level": "critical"}],
            "groups": [{"name": "tech", "budget_pct": 30.0, "used_pct": 40.0, "within": False}],
            "clusters": [{"symbols": ["AAPL", "MSFT"], "avg_abs_corr": 0.9, "gross_pct": 60.0, "net_pct": 60.0,
                          "direction": "long", "hedged": False, "warning": True}], "notes": []}
    out = draw(render_risk, full)
    for header in ("symbol", "% NLV", "level", "group", "budget %", "Correlation clusters", "direction"):
        assert header in out, header
    assert "critical" in out and "AAPL, MSFT" in out and "warning:" in out
    brief = {"summary": "s", "gross_pct": 1.0, "net_pct": 1.0, "long_pct": 1.0, "short_pct": 0.0, "hhi": 0.1,
             "warnings": [], "n": 20, "top": [["LLY", 0.7]], "groups": [["tech", 20.0, 30.0]]}
    out = draw(render_risk, brief)
    assert "Largest positions" in out and "(of 20)" in out and "LLY" in out and "tech" in out


def test_session_is_drawn_as_limits_and_remaining():
    s = {"nlv": 100000, "max_position_usd": 10000, "daily_loss": {"limit": 5000, "remaining": 4000},
         "open_orders": {"limit": 20, "remaining": 17},
         "order_rate": {"limit": 30, "window_seconds": 300, "in_window": 2, "remaining": 28},
         "max_order_quantity": 100000, "sizing": {"method": "atr", "base_usd": 5000, "risk": 1.0, "max_usd": 25000}}
    out = draw(render_session, s)
    assert "limit" in out and "remaining" in out and "orders per 300 s" in out and "4,000" in out
    assert "method=atr" in out
