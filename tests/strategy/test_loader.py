"""Strategy API and the sandboxed loader."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from trader.errors import StrategyLoadError
from trader.strategy.api import Action, Signal, Strategy
from trader.strategy.loader import inspect_strategies, load_strategy_class, resolve_strategy_path

SRC = '''
from trader.strategy.api import Action, Signal, Strategy

class {name}(Strategy):
    """Doc line."""
    LEVEL = {level}

    def on_prices(self, prices):
        return Signal(Action.BUY)
'''


def _write(path, name="S", level=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SRC.format(name=name, level=level))


def test_signal_target_and_params():
    class S(Strategy):
        FAST = 3
        SLOW = 5.0

    assert Signal(Action.SELL).target == -1
    s = S().with_params(FAST="7")
    assert s.FAST == 7 and S.params() == {"FAST": 3, "SLOW": 5.0}
    with pytest.raises(ValueError):
        S().with_params(NOPE=1)


def test_rejects_absolute_traversal_and_symlink_out(tmp_path):
    root = tmp_path / "strategies"
    _write(root / "ok.py")
    outside = tmp_path / "evil.py"
    _write(outside)
    os.symlink(outside, root / "link.py")
    with pytest.raises(StrategyLoadError, match="absolute"):
        resolve_strategy_path(root, str(outside))
    with pytest.raises(StrategyLoadError, match=r"\.\."):
        resolve_strategy_path(root, "../evil.py")
    with pytest.raises(StrategyLoadError, match="leaves"):
        load_strategy_class(root, "link.py")
    assert load_strategy_class(root, "ok.py").__name__ == "S"


def test_unique_module_keys_and_fresh_reload(tmp_path):
    root = tmp_path / "strategies"
    _write(root / "a" / "x.py", level=1)
    _write(root / "b" / "x.py", level=2)
    a, b = load_strategy_class(root, "a/x.py"), load_strategy_class(root, "b/x.py")
    assert (a.LEVEL, b.LEVEL) == (1, 2) and a.__module__ != b.__module__
    _write(root / "a" / "x.py", level=9)
    assert load_strategy_class(root, "a/x.py").LEVEL == 9


def test_inspect_does_not_execute(tmp_path):
    root = tmp_path / "strategies"
    root.mkdir()
    marker = tmp_path / "executed"
    (root / "s.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n" + SRC.format(name="Boom", level=4)
        + "\n    def signals(self, prices):\n        return None\n")
    infos = inspect_strategies(root)
    assert not marker.exists()
    assert [(i.class_name, i.mode, i.params) for i in infos] == [("Boom", "vectorized", {"LEVEL": 4})]


def test_example_strategies_are_listed():
    names = {i.class_name for i in inspect_strategies(Path(__file__).parents[2] / "strategies")}
    assert {"MACrossover", "RSIMeanReversion", "KeltnerBreakout", "OpeningRangeBreakout"} <= names
