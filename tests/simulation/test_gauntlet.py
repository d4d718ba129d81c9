"""`strategies gauntlet` and `strategies create`: the import allowlist, the sandbox, the hostile markets, the
lookahead stage and the scaffolds."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from trader.errors import BacktestError
from trader.simulation.gauntlet import hostile_markets, import_problems, run_gauntlet
from trader.simulation.scaffold import scaffold

HEADER = "import numpy as np\nimport pandas as pd\n\nfrom trader.strategy.api import Action, Signal, Strategy\n\n\n"

CLEAN = HEADER + '''class Clean(Strategy):
    LOOKBACK = 10

    def signals(self, prices):
        mean = prices["close"].rolling(self.LOOKBACK).mean()
        return pd.Series(np.where(prices["close"] > mean, 1.0, 0.0), index=prices.index)
'''

SOCKET = "import socket\n\n" + HEADER + '''class Phone(Strategy):
    def on_prices(self, prices):
        return Signal(Action.BUY)
'''

PEEKER = HEADER + '''class Peeker(Strategy):
    def on_prices(self, view):
        full = view._cols["close"]
        n = len(view)
        if n < len(full):
            return Signal(Action.BUY if full[n] > full[n - 1] else Action.SELL)
        return Signal(Action.FLAT)
'''

WRITER = HEADER + '''class Writer(Strategy):
    def signals(self, prices):
        prices.to_csv("/tmp/mmr-gauntlet-leak.csv")  # passes the import scan; the sandbox refuses the write
        return pd.Series(1.0, index=prices.index)
'''

NETWORK = HEADER + '''class Network(Strategy):
    def signals(self, prices):
        pd.read_csv("http://127.0.0.1:9/prices.csv")  # network through pandas: passes the scan, not the sandbox
        return pd.Series(1.0, index=prices.index)
'''


@pytest.mark.parametrize("source,needle", [
    ("import socket", "import socket"),
    ("from os import path", "from os import"),
    ("import subprocess as sp", "import subprocess"),
    ("from . import x", "from ."),
    ("x = eval('1')", "eval()"),
    ("f = open('x', 'w')", "open()"),
    ("y = ().__class__.__bases__[0].__subclasses__()", ".__subclasses__"),
    ("import urllib.request", "import urllib.request"),
])
def test_import_scan_names_each_forbidden_thing(source, needle):
    problems = import_problems(source)
    assert problems and any(needle in p for p in problems), problems


def test_import_scan_passes_the_allowed_modules():
    assert import_problems(CLEAN) == []
    assert import_problems("import numpy.linalg\nfrom scipy import stats\nimport math\n") == []


def test_hostile_markets_are_what_they_say():
    m = hostile_markets()
    assert set(m) == {"trend", "chop", "gap", "crash", "zero_volume"}
    assert m["trend"]["close"].iloc[-1] > 1.5 * m["trend"]["close"].iloc[0]
    crash = m["crash"]["close"]
    assert crash.iloc[len(crash) // 2 + 5] < 0.55 * crash.iloc[len(crash) // 2 - 1]
    gap = m["gap"]
    third = len(gap) // 3
    assert gap["open"].iloc[third] < 0.85 * gap["close"].iloc[third - 1]  # the gap is at the open
    assert (m["zero_volume"]["volume"] == 0).all()
    assert all(math.isfinite(v) for df in m.values() for v in df.to_numpy().ravel())


def _write(tmp_path: Path, name: str, source: str) -> Path:
    (tmp_path / name).write_text(source)
    return tmp_path


def test_gauntlet_passes_a_clean_strategy_and_rejects_socket_peeking_and_writing(tmp_path):
    for name, src in (("clean.py", CLEAN), ("phone.py", SOCKET), ("peeker.py", PEEKER), ("writer.py", WRITER)):
        _write(tmp_path, name, src)
    clean = run_gauntlet(tmp_path, "clean.py")
    assert clean["passed"] and clean["failed"] == [] and clean["ready_for_live"] is False  # never validated
    stages = {s["name"]: s for s in clean["stages"]}
    assert set(stages["sandbox"]["detail"]["markets"]) == {"trend", "chop", "gap", "crash", "zero_volume"}
    assert stages["validate"]["ok"] is None and "--conids" in stages["validate"]["note"]

    phone = run_gauntlet(tmp_path, "phone.py")
    assert not phone["passed"] and phone["failed"] == ["imports"]
    assert [s["name"] for s in phone["stages"]] == ["imports", "validate"]  # nothing of it was executed

    peeker = run_gauntlet(tmp_path, "peeker.py")
    assert peeker["failed"] == ["lookahead"], peeker["failed"]

    writer = run_gauntlet(tmp_path, "writer.py")
    sandbox = next(s for s in writer["stages"] if s["name"] == "sandbox")
    assert writer["failed"][0] == "sandbox" and any("refused: open" in p for p in sandbox["problems"])
    assert not Path("/tmp/mmr-gauntlet-leak.csv").exists()

    _write(tmp_path, "network.py", NETWORK)
    network = run_gauntlet(tmp_path, "network.py")
    sandbox = next(s for s in network["stages"] if s["name"] == "sandbox")
    assert network["failed"][0] == "sandbox" and any("refused: urllib" in p or "refused: socket" in p
                                                     for p in sandbox["problems"]), sandbox["problems"]


def test_gauntlet_validate_stage_decides_ready_for_live(tmp_path):
    _write(tmp_path, "clean.py", CLEAN)
    ok = run_gauntlet(tmp_path, "clean.py", validate={"run": lambda: {"passed": True, "failed": []}})
    assert ok["ready_for_live"] is True
    bad = run_gauntlet(tmp_path, "clean.py", validate={"run": lambda: {"passed": False, "failed": ["min_trades"]}})
    assert not bad["passed"] and bad["failed"] == ["validate"] and not bad["ready_for_live"]


def _run_scaffold_test(path: str) -> None:
    spec = importlib.util.spec_from_file_location(f"scaffold_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) == 1
    tests[0]()


@pytest.mark.parametrize("style", ["bar", "vectorized", "panel"])
def test_scaffold_writes_a_strategy_and_a_test_that_pass(tmp_path, style):
    out = scaffold(tmp_path, f"my_{style}", style)
    assert Path(out["strategy"]).exists() and out["class_name"] == f"My{style.capitalize()}"
    assert import_problems(Path(out["strategy"]).read_text()) == []
    _run_scaffold_test(out["test"])
    with pytest.raises(BacktestError, match="exists"):
        scaffold(tmp_path, f"my_{style}", style)


@pytest.mark.parametrize("name", ["Bad", "1x", "a-b", "class", "../x"])
def test_scaffold_refuses_bad_names(tmp_path, name):
    with pytest.raises(BacktestError):
        scaffold(tmp_path, name, "bar")
