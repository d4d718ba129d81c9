"""A sweep chunk's one pass over the grid (`signals_grid`) stores exactly what the combo-by-combo path stores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trader.simulation import sweep_runner
from trader.simulation.backtester import Costs, _prepare
from trader.simulation.fill_grid import equity_from_segments
from trader.simulation.sweep_runner import grid_targets, job_payload, run_chunk, run_one

STRATEGIES = Path(__file__).parents[2] / "strategies"
PARAMS = [{"FAST": f, "SLOW": s, "ALLOW_SHORT": short} for f in (2, 5, 9) for s in (9, 20, 31)
          for short in (False, True)]


def _payload(root: Path, file: str, bars: dict) -> dict:
    return job_payload(f"grid-{file}", strategies_root=root, strategy_file=file, class_name=None,
                       source=(root / file).read_text(), bars=bars, capital=1e5, quantity=None, costs=Costs(commission_bps=1.0),
                       mode="vectorized")


def _bars(seed: int, n: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.bdate_range("2020-01-01", periods=n, tz="UTC")
    return _prepare(pd.DataFrame({"open": close * np.exp(rng.normal(0, 0.002, n)), "high": close * 1.01,
                                  "low": close * 0.99, "close": close, "volume": 1e6}, index=idx))


def _stored_curve(res: dict, bars: dict) -> bytes:
    """The equity values a run's result stores: every bar's value, or rebuilt from its segments (one conId)."""
    if "equity_seg" not in res:
        return res["equity_f64"]
    (one,) = bars.values()  # a prepared DataFrame or the payload's arrays
    seg = np.frombuffer(res["equity_seg"], dtype="<f8")
    return equity_from_segments(seg, np.asarray(one["close"], dtype=float)).round(6).astype("<f8").tobytes()


def test_grid_pass_equals_per_run_path():
    for bars in ({1: _bars(1, 400)}, {1: _bars(1, 400), 2: _bars(2, 330)}):
        payload = _payload(STRATEGIES, "ma_crossover.py", bars)
        grid = grid_targets(payload, PARAMS)
        assert grid is not None and set(grid) == set(bars) and grid[1].shape == (400, len(PARAMS))
        got, want = run_chunk(payload, PARAMS), [run_one(payload, p) for p in PARAMS]
        assert all(g["ok"] for g in got) and sum(json.loads(g["metrics_json"])["trade_count"] for g in got) > 100
        for g, w in zip(got, want, strict=True):
            for k in ("params", "metrics_json", "trades_json", "trades_z", "moments_json", "mode"):
                assert g[k] == w[k], k
            assert _stored_curve(g, bars) == _stored_curve(w, bars)


def test_strategy_without_grid_or_failing_or_wrong_grid_runs_combo_by_combo(tmp_path, monkeypatch):
    src = (STRATEGIES / "ma_crossover.py").read_text()
    (tmp_path / "plain.py").write_text(src.split("    def signals_grid")[0])
    (tmp_path / "broken.py").write_text(src.replace('close = prices["close"]\n        sma',
                                                    'raise ValueError("no")\n        sma'))
    # a grid that is not the strategy's signals (here: it peeks one bar ahead) is not used
    (tmp_path / "peeks.py").write_text(src.replace("out[:, j] = col", "out[:, j] = np.roll(col, -1)"))
    bars = {1: _bars(3, 200)}
    assert grid_targets(_payload(tmp_path, "plain.py", bars), PARAMS[:4]) is None
    assert grid_targets(_payload(tmp_path, "peeks.py", bars), PARAMS[:4]) is None
    broken = _payload(tmp_path, "broken.py", bars)
    assert grid_targets(broken, PARAMS[:4]) is None
    calls = []
    monkeypatch.setattr(sweep_runner, "run_one", lambda payload, p, targets=None: calls.append(targets) or {})
    run_chunk(broken, PARAMS[:4])
    assert calls == [None] * 4


def test_grid_pass_applies_time_exits_per_combo(tmp_path):
    """A strategy with a time exit (MAX_HOLD_BARS, here also a grid parameter): the grid pass applies each combo's
    own exit, the same stored results as combo by combo."""
    src = (STRATEGIES / "ma_crossover.py").read_text()
    (tmp_path / "held.py").write_text(src.replace("    ALLOW_SHORT = False\n", "    ALLOW_SHORT = False\n    MAX_HOLD_BARS = 7\n"))
    params = [{"FAST": f, "SLOW": 20, "MAX_HOLD_BARS": h} for f in (2, 5) for h in (3, 7, 40)]
    payload = _payload(tmp_path, "held.py", {1: _bars(4, 300)})
    assert grid_targets(payload, params) is not None
    got, want = run_chunk(payload, params), [run_one(payload, p) for p in params]
    assert len({(g["trades_json"], g["trades_z"]) for g in got}) == len(params)  # the hold limits make every combo differ
    for g, w in zip(got, want, strict=True):
        for k in ("params", "metrics_json", "trades_json", "trades_z", "moments_json", "mode"):
            assert g[k] == w[k], k
        assert _stored_curve(g, payload["bars"]) == _stored_curve(w, payload["bars"])


def test_strategy_without_signals_grid_shares_one_fill_pass(tmp_path):
    """A vectorized strategy without `signals_grid`: its combos' `signals` are stacked and go through one fill pass
    (runs come back as segments), storing what the combo-by-combo path stores; a combo whose `signals` raises
    sends the chunk combo by combo, where only that combo fails."""
    src = (STRATEGIES / "ma_crossover.py").read_text().split("    def signals_grid")[0]
    (tmp_path / "plain.py").write_text(src)
    (tmp_path / "picky.py").write_text(src.replace('        close = prices["close"]\n        fast',
                                                   '        if self.FAST == 5:\n            raise ValueError("no 5")\n'
                                                   '        close = prices["close"]\n        fast', 1))
    bars = {1: _bars(5, 300)}
    payload = _payload(tmp_path, "plain.py", bars)
    got, want = run_chunk(payload, PARAMS), [run_one(payload, p) for p in PARAMS]
    assert all("equity_seg" in g for g in got) and all("equity_f64" in w for w in want)
    for g, w in zip(got, want, strict=True):
        for k in ("params", "metrics_json", "trades_json", "trades_z", "moments_json", "mode"):
            assert g[k] == w[k], k
        assert _stored_curve(g, bars) == _stored_curve(w, bars)
    picky = run_chunk(_payload(tmp_path, "picky.py", bars), PARAMS)
    assert [r["ok"] for r in picky] == [p["FAST"] != 5 for p in PARAMS]
    assert all("no 5" in r["error"] for r in picky if not r["ok"])


def test_ma_crossover_signals_grid_is_signals_combo_by_combo():
    """Combos in any order, defaults left out, values given as floats or strings (`with_params` coerces them),
    fast windows at or over the slow one, shorts mixed in: each column is `signals` of its combo."""
    from trader.strategy.loader import load_strategy_class

    cls = load_strategy_class(STRATEGIES, "ma_crossover.py")
    df = _bars(6, 260)
    params = [{"SLOW": 30}, {"FAST": 5.0, "SLOW": "20"}, {"FAST": 20, "SLOW": 20, "ALLOW_SHORT": True},
              {"FAST": 40, "SLOW": 9}, {"FAST": 3, "SLOW": 9, "ALLOW_SHORT": True}, {"FAST": 5, "SLOW": 9},
              {"FAST": 3, "SLOW": 30, "ALLOW_SHORT": False}, {}]
    grid = cls().signals_grid(df.copy(), params)
    assert grid.shape == (len(df), len(params))
    for j, p in enumerate(params):
        want = cls().with_params(**p).signals(df.copy()).to_numpy()
        assert np.array_equal(grid[:, j], want, equal_nan=True), p
    with pytest.raises(ValueError, match="SLOWW"):  # as with_params raises
        cls().signals_grid(df.copy(), [{"FAST": 3, "SLOWW": 9}])
