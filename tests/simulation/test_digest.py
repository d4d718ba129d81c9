"""The sweep digest (from hand-built leaderboard rows) and the sweep heatmap."""
from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from trader.simulation.digest import (
    digest_filename,
    is_strong,
    render_digest,
    risk_flags,
)
from trader.simulation.plot import plot_sweep_heatmap, sweep_grid


def _row(rank, rid, job="ma", *, score=1.0, dsr=0.99, trades=40, skew=0.1, kurt=0.5, **params):
    return {"rank": rank, "id": rid, "job": job, "class_name": "MACrossover", "params": params or {"FAST": rank},
            "score": score, "sharpe": score * 1.2, "dsr": dsr, "total_return": 0.25, "max_drawdown": 0.1,
            "trade_count": trades, "profit_factor": 1.6, "skew": skew, "excess_kurtosis": kurt}


SWEEP = {"id": "sw123456", "name": "nightly", "status": "done", "created_at": "2026-11-23 02:00:00+00:00",
         "finished_at": "2026-11-23 02:05:30+00:00", "total": 4, "done": 4, "failed": 0, "digest_path": None,
         "jobs": [{"name": "ma", "strategy_file": "ma_crossover.py", "class_name": "MACrossover",
                   "conids": [265598], "grid": {"FAST": [1, 2, 3]}},
                  {"name": "rsi", "strategy_file": "rsi_mean_reversion.py", "class_name": None,
                   "conids": [756733], "grid": {"PERIOD": [7]}}]}


def test_strong_rule_needs_all_three():
    assert is_strong(_row(1, "a"))
    assert not is_strong(_row(1, "a", score=0.0))         # score must be > 0
    assert not is_strong(_row(1, "a", dsr=0.949))         # DSR ≥ 0.95
    assert is_strong(_row(1, "a", dsr=0.95, trades=30))   # the bounds themselves pass
    assert not is_strong(_row(1, "a", trades=29))          # trades ≥ 30
    assert not is_strong(_row(1, "a", dsr=None))           # a missing number never passes
    assert not is_strong(_row(1, "a", dsr=math.nan))


def test_risk_flags():
    assert risk_flags(_row(1, "a")) == []
    tails = risk_flags(_row(1, "a", skew=-0.5, kurt=4.0))
    assert len(tails) == 1 and "negative skew" in tails[0] and "fat tails" in tails[0]
    assert risk_flags(_row(1, "a", skew=-0.5, kurt=2.0)) == []  # negative skew alone is not flagged
    assert risk_flags(_row(1, "a", skew=0.5, kurt=9.0)) == []   # fat tails with positive skew neither
    few = risk_flags(_row(1, "a", trades=12))
    assert len(few) == 1 and "few trades (12 < 30)" in few[0]
    over = risk_flags(_row(1, "a", dsr=0.3))
    assert len(over) == 1 and "overfitting" in over[0]
    assert len(risk_flags(_row(1, "a", dsr=0.3, trades=3, skew=-1, kurt=5))) == 3


def test_digest_names_top_run_strong_candidates_flags_and_commands():
    rows = [_row(1, "top00001", FAST=1), _row(2, "weak0002", dsr=0.2, trades=10, FAST=2),
            _row(3, "tail0003", skew=-1.0, kurt=6.0, dsr=0.96, trades=31, FAST=3),
            _row(4, "rsi00004", job="rsi", score=-0.5, dsr=0.1, PERIOD=7)]
    text = render_digest(SWEEP, rows)
    assert text.startswith("# Sweep nightly (sw123456)")
    assert "top run: `top00001`" in text and "FAST=1" in text
    assert "elapsed: 330.0 s" in text and "4 done, 0 failed" in text
    assert "Rule: score > 0 and DSR ≥ 0.95 and trades ≥ 30." in text
    ma, rsi = text.split("## rsi")
    strong = ma.split("### Strong candidates")[1].split("### Risk flags")[0]
    assert "`top00001`" in strong and "`tail0003`" in strong and "weak0002" not in strong
    flags = ma.split("### Risk flags")[1].split("### Inspect")[0]
    assert "`weak0002`: few trades (10 < 30): statistics are weak; overfitting warning" in flags
    assert "`tail0003`: negative skew" in flags and "top00001" not in flags
    for cmd in ("mmr backtests show top00001", "mmr backtests confidence top00001",
                "mmr backtests validate top00001", "mmr sweep show sw123456"):
        assert cmd in text
    assert "None: no run of this job meets the rule." in rsi
    assert "| 4 | `rsi00004` | PERIOD=7 | -0.500 |" in rsi


def test_digest_limits_candidates_and_handles_no_runs():
    rows = [_row(i, f"run{i:05d}", FAST=i) for i in range(1, 16)]
    text = render_digest(SWEEP, rows, top=5)
    assert "### Top 5 candidates" in text and "run00005" in text and "run00006" not in text
    empty = render_digest({**SWEEP, "status": "failed", "done": 0, "failed": 4}, [])
    assert "top run: none" in empty and "No finished runs." in empty and "status: failed" in empty
    assert "Failed runs" not in empty
    failed = render_digest({**SWEEP, "failed": 1, "errors": ['ma {"FAST":-1}: ValueError: bad window']}, rows)
    assert '## Failed runs' in failed and 'ma {"FAST":-1}: ValueError: bad window' in failed
    assert "--resume sw123456" in failed


def test_digest_filename():
    name = digest_filename("ab12cd34", "my nightly/run", datetime(2026, 11, 23, 2, 5, 6, tzinfo=UTC))
    assert name == "sweep_ab12cd34_my-nightly-run_20261123T020506Z.md"


def test_heatmap_pivots_best_over_other_dims_and_writes_png(tmp_path):
    rows = [{"params": {"FAST": f, "SLOW": s, "SHORT": sh}, "score": f * 10 + s + (5 if sh else 0)}
            for f in (10, 5, 20) for s in (30, 50) for sh in (False, True)]
    rows.append({"params": {"FAST": 40, "SLOW": 30, "SHORT": False}, "score": None})
    xs, ys, cells = sweep_grid(rows, "FAST", "SLOW")
    assert xs == [5, 10, 20, 40] and ys == [30, 50]
    assert cells[0][:3] == [85.0, 135.0, 235.0] and cells[1][0] == 105.0  # SHORT=True wins (+5)
    assert math.isnan(cells[0][3]) and math.isnan(cells[1][3])
    out = plot_sweep_heatmap(rows, "FAST", "SLOW", tmp_path / "heat.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    with pytest.raises(ValueError, match="FAST.*NOPE"):
        sweep_grid(rows, "FAST", "NOPE")


def test_digest_warns_when_a_job_ran_on_simulated_bars():
    jobs = [{**SWEEP["jobs"][0], "data": {"265598": "simulated"}}, {**SWEEP["jobs"][1], "data": {"756733": "stored"}}]
    text = render_digest({**SWEEP, "jobs": jobs}, [_row(1, "top00001"), _row(2, "rsi00002", job="rsi")])
    ma, rsi = text.split("## rsi")
    assert "**Warning: SIMULATED bars** for conId 265598" in ma
    assert "SIMULATED" not in rsi
