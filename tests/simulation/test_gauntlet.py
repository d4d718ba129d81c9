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


SLEEPER = HEADER + '''class Sleeper(Strategy):
    def signals(self, prices):
        if len(prices) >= 300:  # the hostile markets have 260 bars: misbehaves only on real, longer histories
            prices.to_csv("/tmp/mmr-gauntlet-sleeper.csv")
        return pd.Series(1.0, index=prices.index)
'''


def test_validate_stage_runs_the_strategy_in_the_sandbox(tmp_path):
    """The validate stage's backtest and walk-forward run in the sandbox worker: a strategy that misbehaves only on
    the validate bars is refused there (nothing written, nothing stored), and a clean one is stored and judged."""
    from trader.config import PromotionConfig
    from trader.data.store import research_store
    from trader.simulation.coverage import data_report
    from trader.simulation.data import load_bars
    from trader.simulation.sandbox_run import sandboxed_validate
    from trader.simulation.store import get_run
    from trader.simulation.walkforward import get_walkforward

    root = _write(tmp_path, "sleeper.py", SLEEPER)
    _write(tmp_path, "clean.py", CLEAN)
    store = research_store(tmp_path / "data")
    bars = {265598: load_bars(265598, 500)}
    args = dict(bar_size="1 day", criteria=PromotionConfig(), data=data_report(bars, "1 day"), data_dir=None)
    bad = sandboxed_validate(store, root, "sleeper.py", None, bars, **args)
    assert not bad["passed"] and bad["run_id"] is None and bad["failed"][0] == "sandbox"
    assert any("refused: open" in f and "mmr-gauntlet-sleeper" in f for f in bad["failed"]), bad["failed"]
    assert not Path("/tmp/mmr-gauntlet-sleeper.csv").exists()
    assert store.execute("SELECT count(*) FROM backtest_runs", write=False)[0][0] == 0
    good = sandboxed_validate(store, root, "clean.py", None, bars, **args)
    run = get_run(store, good["run_id"])
    from trader.simulation.backtester import run_backtest
    from trader.strategy.loader import load_strategy_class

    here = run_backtest(load_strategy_class(root, "clean.py")(), bars)  # the same numbers as in this process
    assert run["class_name"] == "Clean" and run["metrics"]["trade_count"] == here.metrics["trade_count"] > 0
    assert run["metrics"]["total_return"] == pytest.approx(here.metrics["total_return"], abs=1e-12)
    assert len(run["equity"]["v"]) == len(bars[265598]) and len(run["trades"]) == len(here.trades)
    assert {c["check"] for c in good["checks"]} >= {"min_trades", "positive_oos"}
    wf = get_walkforward(store, good["walkforward_id"])
    assert wf["run_id"] == good["run_id"] and wf["summary"]["windows"] >= 1


PANEL_PEEKER = HEADER + '''class PanelPeeker(Strategy):
    def panel_signals(self, frames):
        ids = sorted(frames)
        other = frames[ids[-1]]["close"]
        lead = (other.shift(-1) > other).astype(float).reindex(frames[ids[0]].index)  # the other's NEXT close
        return {ids[0]: lead, ids[-1]: pd.Series(0.0, index=frames[ids[-1]].index)}
'''


def test_gauntlet_catches_a_panel_peeker(tmp_path):
    _write(tmp_path, "panel_peeker.py", PANEL_PEEKER)
    out = run_gauntlet(tmp_path, "panel_peeker.py")
    look = next(s for s in out["stages"] if s["name"] == "lookahead")
    assert out["failed"] == ["lookahead"] and "panel" in look["problems"][0], out


def test_strategies_may_import_the_api_and_indicators_but_no_other_trader_module() -> None:
    from trader.simulation.gauntlet import import_problems

    assert import_problems("from trader.strategy.indicators import rolling_mean\nimport trader.strategy.api\n") == []
    for bad in ("from trader.strategy.live import LiveRunner", "import trader.strategy.indicators_x",
                "from trader.strategy.api.sub import x", "import trader"):
        assert import_problems(bad), bad
