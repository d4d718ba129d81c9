"""The nightly sweep YAML: good files become SweepJobs; bad ones are ConfigErrors naming the file and the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from trader.errors import ConfigError, UniverseNotFound
from trader.simulation.backtester import Costs
from trader.simulation.sweep import SweepJob
from trader.simulation.sweep_spec import load_spec, strategy_file_name

EXAMPLE = Path(__file__).parents[2] / "examples" / "nightly_sweep.yaml"

GOOD = """
name: nightly
workers: 2
defaults:
  days: 3650
  costs: {commission_bps: 1, slippage_bps: 2}
jobs:
  - name: ma
    strategy: strategies/ma_crossover.py
    class: MACrossover
    conids: [265598, 756733]
    grid: {FAST: [5, 10, 20], SLOW: [30, 50, 100]}
  - strategy: rsi_mean_reversion.py
    universe: demo
    start: 2020-01-01
    end: 2025-12-31
    bar_size: 1 hour
    costs: {slippage_per_share: 0.01}
    mode: vectorized
    grid: {PERIOD: [7, 14]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def _members(name: str) -> list[int]:
    if name == "demo":
        return [1, 2, 3]
    raise UniverseNotFound(f"no universe {name!r}")


def test_good_spec_becomes_jobs(tmp_path):
    name, jobs, options = load_spec(_write(tmp_path, GOOD), universe_members=_members)
    assert name == "nightly" and options == {"workers": 2, "cluster": None}
    ma, rsi = jobs
    assert ma == SweepJob(name="ma", strategy_file="ma_crossover.py", class_name="MACrossover",
                          conids=(265598, 756733), grid={"FAST": [5, 10, 20], "SLOW": [30, 50, 100]},
                          days=3650, costs=Costs(commission_bps=1, slippage_bps=2))
    # the job's own keys win over defaults; the universe expands through the callable; no name -> the stem
    assert rsi.name == "rsi_mean_reversion" and rsi.class_name is None and rsi.conids == (1, 2, 3)
    assert (rsi.start, rsi.end, rsi.bar_size, rsi.mode) == ("2020-01-01", "2025-12-31", "1 hour", "vectorized")
    assert rsi.costs == Costs(slippage_per_share=0.01) and rsi.days == 3650


def test_unset_fields_keep_sweepjob_defaults(tmp_path):
    _, [job], options = load_spec(_write(tmp_path, "name: n\njobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}]"))
    default = SweepJob(name="x", strategy_file="x.py", class_name=None, conids=(1,), grid={"A": [1]})
    assert job == default and options == {"workers": None, "cluster": None}


def test_shipped_example_parses():
    name, jobs, _ = load_spec(EXAMPLE, universe_members=_members)
    assert name == "nightly" and [j.name for j in jobs] == ["ma_crossover", "rsi_mean_reversion"]
    assert all(j.grid for j in jobs)


@pytest.mark.parametrize(("text", "message"), [
    ("name: n\njobs: [{strategy: x.py, conids: [1], grid: {A: [1]}, colour: red}]", "unknown key 'jobs[0].colour'"),
    ("name: n\njobz: []", "unknown key 'jobz'"),
    ("jobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}]", "missing key 'name'"),
    ("name: n\njobs: [{conids: [1], grid: {A: [1]}}]", "missing key 'jobs[0].strategy'"),
    ("name: n\njobs: []", "key 'jobs' is empty"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], grid: {A: 3}}]", "key 'jobs[0].grid.A' must be a non-empty list"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], grid: {A: []}}]", "'jobs[0].grid.A' must be a non-empty list"),
    ("name: n\njobs: [{strategy: x.py, conids: [1]}]", "key 'jobs[0].grid' is missing or empty"),
    ("name: n\njobs: [{strategy: x.py, grid: {A: [1]}}]", "exactly one of 'conids' or 'universe'"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], universe: demo, grid: {A: [1]}}]", "exactly one of"),
    ("name: n\njobs: [{strategy: x.py, conids: [abc], grid: {A: [1]}}]", "invalid value for key 'jobs[0].conids[0]'"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], days: many, grid: {A: [1]}}]", "key 'jobs[0].days'"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], mode: fast, grid: {A: [1]}}]", "key 'jobs[0].mode'"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], start: 2024-01-01, end: 2023-01-01, grid: {A: [1]}}]",
     "'jobs[0].start' must be before 'end'"),
    ("name: n\ndefaults: {costs: {commision_bps: 1}}\njobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}]",
     "unknown key 'defaults.costs.commision_bps'"),
    ("name: n\njobs: [{strategy: x.py, universe: nope, grid: {A: [1]}}]", "'jobs[0].universe' ('nope'): no universe"),
    ("name: n\njobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}, {strategy: x.py, conids: [2], grid: {A: [1]}}]",
     "'jobs[1].name': job name 'x' is used twice"),
    ("name: 'bad name/'\njobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}]", "key 'name' must be"),
    ("name: n\nworkers: 0\njobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}]", "key 'workers' must be at least 1"),
    ("name: n\njobs: [{strategy: x.py\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_bad_spec_names_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_spec(path, universe_members=_members)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file_and_universe_without_resolver(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the sweep file"):
        load_spec(tmp_path / "absent.yaml")
    path = _write(tmp_path, "name: n\njobs: [{strategy: x.py, universe: demo, grid: {A: [1]}}]")
    with pytest.raises(ConfigError, match="universes cannot be resolved"):
        load_spec(path)


def test_strategy_file_name():
    assert strategy_file_name("strategies/x.py") == strategy_file_name("x.py") == "x.py"
    assert strategy_file_name("./strategies/sub/x.py") == "sub/x.py"


def test_sweep_yaml_sets_the_slippage_models_and_they_reach_the_runs(tmp_path):
    """spread_bps / impact_coefficient / impact_window in the YAML become the job's Costs (as `backtest`'s
    --spread-bps/--impact-* do), are stored with each run, and cost money: the same grid without them earns more."""
    import json

    from trader.data.store import research_store
    from trader.simulation.sweep import run_sweep

    text = ("name: slip\ndefaults: {days: 400, costs: {spread_bps: 40, impact_coefficient: 0.5, impact_window: 10}}\n"
            "jobs:\n  - {name: slip, strategy: ma_crossover.py, conids: [265598], grid: {FAST: [5], SLOW: [30]}}\n"
            "  - {name: free, strategy: ma_crossover.py, conids: [265598], grid: {FAST: [5], SLOW: [30]},\n"
            "     costs: {commission_bps: 0}}\n")
    _, (slip, free), _ = load_spec(_write(tmp_path, text))
    assert slip.costs == Costs(spread_bps=40, impact_coefficient=0.5, impact_window=10)
    assert free.costs == Costs()
    with pytest.raises(ConfigError, match="impact_window"):
        load_spec(_write(tmp_path, "name: n\ndefaults: {costs: {impact_window: 1}}\n"
                                   "jobs: [{strategy: x.py, conids: [1], grid: {A: [1]}}]"))
    s = run_sweep([slip, free], name="slip", strategies_root=Path(__file__).parents[2] / "strategies",
                  data_dir=tmp_path / "data", report_dir=tmp_path / "reports", workers=1)
    rows = research_store(tmp_path / "data").execute(
        "SELECT sweep_job, costs, metrics FROM backtest_runs WHERE sweep_id = ?", [s.sweep_id], write=False)
    by_job = {j: (json.loads(c), json.loads(m)) for j, c, m in rows}
    assert by_job["slip"][0]["spread_bps"] == 40 and by_job["slip"][0]["impact_coefficient"] == 0.5
    assert by_job["slip"][1]["trade_count"] == by_job["free"][1]["trade_count"] > 0
    assert by_job["slip"][1]["total_return"] < by_job["free"][1]["total_return"]
