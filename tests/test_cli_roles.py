"""MMR_ROLE enforcement in ``mmr_cli.run``: checked before any command runs, unknown roles refuse all."""

from __future__ import annotations

import json

import pytest

from trader.cli.core import AppContext
from trader.errors import RoleForbidden
from trader.mmr_cli import check_role, run


@pytest.mark.parametrize(("role", "args", "allowed"), [
    ("operator", ["--json", "buy", "AAPL", "--quantity", "1"], True),
    ("proposer", ["--json", "propose", "AAPL", "BUY"], True),
    ("proposer", ["--json", "buy", "AAPL"], False),
    ("proposer", ["approve", "3"], False),
    ("proposer", ["--json", "prisk"], True),
    ("proposer", ["--json", "watch", "--count", "1"], True),  # CLAUDE.md's MONITOR streams: reads
    ("approver", ["--json", "listen", "AAPL", "--count", "1"], True),
    ("approver", ["--json", "approve", "3"], True),
    ("approver", ["--json", "propose", "AAPL", "BUY"], False),
    ("approver", ["--json", "proposals", "show", "3"], True),
    ("approver", ["--json", "group", "create", "x", "--budget", "5"], False),
    ("proposer", ["--json", "risk"], True),
    ("proposer", ["--json", "risk", "set", "min_price", "1"], False),  # issue 14: operator only
    ("proposer", ["--json", "filter", "add", "denylist", "GME"], False),
    ("proposer", ["--json", "session", "reset"], False),
    ("proposer", ["--json", "protect", "AAPL", "--stop", "1"], True),  # exits only reduce risk
    ("proposer", ["--json", "to-market", "42"], False),
    ("approver", ["--json", "close-all-positions", "--dry-run"], False),
    # issue 17: a combo --preview stores nothing (a read); placing it is not a proposer's, proposing it is
    ("proposer", ["--json", "options", "combo", "SPY", "--leg", "BUY 500C", "--leg", "SELL 510C", "--preview"], True),
    ("approver", ["--json", "options", "vertical", "SPY", "-e", "20270115", "--preview"], True),
    ("proposer", ["--json", "options", "combo", "SPY", "--leg", "BUY 500C", "-q", "1"], False),
    ("proposer", ["--json", "options", "combo", "SPY", "--leg", "BUY 500C", "--propose", "--preview"], True),
    ("approver", ["--json", "options", "combo", "SPY", "--leg", "BUY 500C", "--propose", "--preview"], False),
    ("nobody", ["--json", "status"], False),
    ("nobody", [], False),
])
def test_check_role(monkeypatch, role, args, allowed):
    monkeypatch.setenv("MMR_ROLE", role)
    if allowed:
        check_role(args)
    else:
        with pytest.raises(RoleForbidden):
            check_role(args)


def test_unknown_role_is_a_json_error(monkeypatch, capsys):
    monkeypatch.setenv("MMR_ROLE", "admin")
    code = run(["--json", "status"], AppContext(json=True))
    doc = json.loads(capsys.readouterr().out)
    assert code != 0 and doc["error"]["type"] == "RoleForbidden" and "admin" in doc["error"]["message"]


# The agent skills are written for the proposer role (skills/mmr-loop wholly; skills/mmr names the lines that
# are someone else's): every other `mmr` line in them must be one the proposer may run (issue 14).
NOT_THE_AGENTS = {"down", "keys", "--json approve 12", "--json group create energy --budget 15",
                  "--json group add energy XOM CVX"}


def _skill_lines(name: str) -> list[list[str]]:
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "skills" / name / "SKILL.md").read_text()
    out = []
    for m in re.finditer(r"(?:^|[`\s])mmr((?:\s+[^`#\n|]+)?)", text, re.M):
        example = m.group(1).strip()
        words = shlex.split(example) if example else []
        if example not in NOT_THE_AGENTS and [w for w in words if w != "--json"][:1] \
                and re.fullmatch(r"[a-z][a-z0-9-]*", [w for w in words if w != "--json"][0]):
            out.append(words)
    return out


@pytest.mark.parametrize("skill", ["mmr", "mmr-loop"])
def test_the_agent_skills_show_only_what_the_proposer_may_run(monkeypatch, skill):
    monkeypatch.setenv("MMR_ROLE", "proposer")
    lines = _skill_lines(skill)
    assert len(lines) >= 10
    refused = []
    for words in lines:
        try:
            check_role(words)
        except RoleForbidden:
            refused.append(" ".join(words))
    assert refused == []


@pytest.mark.parametrize("role", ["proposer", "approver"])
def test_the_bare_strategies_group_is_its_list(monkeypatch, role):
    monkeypatch.setenv("MMR_ROLE", role)
    check_role(["--json", "strategies"])  # `strategies` = `strategies list`: a read
    with pytest.raises(RoleForbidden):
        check_role(["--json", "strategies", "deploy", "x"])
