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
