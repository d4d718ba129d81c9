"""Planted secrets never appear in a log, a CLI output or a file under MMR_HOME.

``history massive`` runs end to end (CLI → data_service → Massive fake) with a distinctive API key and every
log at DEBUG; afterwards every byte written under MMR_HOME and every CLI output is searched for the key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from trader.data.bars import BarStore, BarSymbol, remember_symbol
from trader.data.massive_fake import FakeMassive, serve_fake_massive
from trader.logging_setup import HTTP_LOGGERS, quiet_http_loggers
from trader.testing import mmr, running_platform

SECRET = "mmrPLANTEDsecret7f3a9c2e51d0"

DEBUG_LOGGING = """version: 1
disable_existing_loggers: false
formatters:
  file: {format: "%(asctime)s %(levelname)s %(name)s %(message)s"}
handlers:
  file: {class: logging.FileHandler, formatter: file, level: DEBUG, filename: "{log_dir}/{service}.log"}
root: {level: DEBUG, handlers: [file]}
loggers:
  httpx: {level: DEBUG}
  httpcore: {level: DEBUG}
"""


def _files_holding(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path.relative_to(root)))
            except OSError:
                pass
    return hits


def test_http_loggers_stay_at_warning_even_when_configured_lower():
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    quiet_http_loggers()
    assert all(logging.getLogger(n).getEffectiveLevel() >= logging.WARNING for n in HTTP_LOGGERS)


def test_massive_key_never_reaches_logs_outputs_or_stores(tmp_path):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "logging.yaml").write_text(DEBUG_LOGGING)  # the most talkative logging a user could set
    remember_symbol(BarStore.open(home / "data"), BarSymbol(265598, "AAPL", primary_exchange="NASDAQ"))
    outputs: list[str] = []
    with serve_fake_massive(key=SECRET) as url, \
            running_platform(home, MASSIVE_API_KEY=SECRET, MASSIVE_BASE_URL=url) as p:
        for args in (("history", "massive", "--symbol", "AAPL", "--bar_size", "1 min", "--prev_days", "1"),
                     ("history", "list", "--symbol", "AAPL"), ("status",), ("events",)):
            res = mmr(p.env, "--json", *args, timeout=60)
            outputs += [res.stdout, res.stderr]
            if args[1:2] == ("massive",):
                doc = json.loads(res.stdout.strip().splitlines()[-1])
                assert res.returncode == 0 and doc["bars_new"] == 6, res.stdout + res.stderr
        assert len(FakeMassive.requests) == 2  # the key was accepted (from the header) on every page
    assert all(SECRET not in r for r in FakeMassive.requests)  # never in a URL
    log_text = (home / "logs" / "data_service.log").read_text()
    assert "DEBUG" in log_text  # the logs really were written at DEBUG
    assert [i for i, out in enumerate(outputs) if SECRET in out] == []
    assert _files_holding(home, SECRET.encode()) == []


APPROVER_SECRET = "mmrPLANTEDapprover4b8e0d2a"


def test_approver_key_never_reaches_logs_outputs_or_stores(tmp_path):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "logging.yaml").write_text(DEBUG_LOGGING)
    outputs: list[str] = []

    def run(p, *args: str) -> dict:
        res = mmr(p.env, "--json", *args, timeout=90)
        outputs.extend([res.stdout, res.stderr])
        return json.loads(res.stdout.strip().splitlines()[-1])

    with running_platform(home, with_gateway=True, broker_ready=True, MMR_APPROVER_KEY=APPROVER_SECRET,
                          APPROVER_KEY_THRESHOLD_USD="1") as p:
        proposal = run(p, "propose", "AAPL", "BUY", "--quantity", "1", "--reasoning", "planted approver key")
        pid = str(proposal["id"])
        assert run(p, "approve", pid)["error"]["type"] == "ApproverKeyRequired"
        assert run(p, "approve", pid, "--key", APPROVER_SECRET[:-1] + "x")["error"]["type"] == "ApproverKeyRequired"
        approved = run(p, "approve", pid, "--key", APPROVER_SECRET, "--request-id", "secret-approve-1")
        assert approved["state"] == "EXECUTED", approved
        for args in (("proposals", "show", pid), ("orders", "--request", "secret-approve-1"), ("events",),
                     ("status", "--detail"), ("trades",)):
            run(p, *args)
    assert "DEBUG" in (home / "logs" / "trader_service.log").read_text()
    # The command lines above held the key on purpose; what the platform wrote back must not.
    assert [i for i, out in enumerate(outputs) if APPROVER_SECRET in out] == []
    assert _files_holding(home, APPROVER_SECRET.encode()) == []
