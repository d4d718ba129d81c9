"""A sweep's grid-pass chunks are capped by their size in cells (combos × bars, `sweep.GRID_CELLS`), so a year of
one-minute bars does not put hundreds of combos' matrices in one worker; the stored runs are the same."""
from __future__ import annotations

import json
from pathlib import Path

from trader.data.store import research_store
from trader.simulation import sweep
from trader.simulation.backtester import Costs
from trader.simulation.sweep import SweepJob, run_sweep

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"
GRID = {"FAST": [3, 5, 8], "SLOW": [20, 30, 40]}


def _sweep(tmp_path: Path, name: str) -> dict[str, dict]:
    job = SweepJob("ma", "ma_crossover.py", "MACrossover", (265598,), GRID, days=400, costs=Costs(commission_bps=1.0))
    s = run_sweep([job], name=name, strategies_root=STRATEGIES, data_dir=tmp_path / "data",
                  report_dir=tmp_path / "reports", workers=1)
    assert (s.status, s.done) == ("done", 9)
    rows = research_store(tmp_path / "data").execute("SELECT params, metrics, trades, trades_z FROM backtest_runs "
                                                     "WHERE sweep_id = ?", [s.sweep_id], write=False)
    return {p: (json.loads(m), t, z) for p, m, t, z in rows}


def test_grid_chunks_are_capped_by_cells_with_the_same_results(tmp_path, monkeypatch):
    whole = _sweep(tmp_path, "whole")
    sizes: list[int] = []
    real = sweep.chunk_tasks

    def spy(todo, size):
        sizes.append(size)
        return real(todo, size)

    monkeypatch.setattr(sweep, "chunk_tasks", spy)
    monkeypatch.setattr(sweep, "GRID_CELLS", 1_000)  # 400 days of daily bars (> 250): at most 4 combos a chunk
    capped = _sweep(tmp_path, "capped")
    assert sizes and max(sizes) <= 4
    assert capped == whole
