"""Parameter sweeps: grid expansion, persistence under a sweep id, leaderboard + DSR, resume, dry run, Dask, lock."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trader.data.store import research_store
from trader.errors import BacktestError, SweepLocked, SweepNotFound
from trader.simulation import sweep_runner, sweep_writer
from trader.simulation.backtester import Costs
from trader.simulation.stats import deflated_sharpe
from trader.simulation.store import get_run, list_runs, quality_score, stored_trades
from trader.simulation.sweep import (
    SweepJob,
    SweepLock,
    estimate_sweep,
    expand_grid,
    get_sweep,
    job_deflated_sharpes,
    leaderboard,
    list_sweeps,
    run_sweep,
)

STRATEGIES = Path(__file__).parents[2] / "strategies"
GRID = {"FAST": [5, 10, 15], "SLOW": [30, 40, 50]}


def _job(name: str = "ma", grid: dict | None = None, **kw) -> SweepJob:
    return SweepJob(name, "ma_crossover.py", "MACrossover", (265598,), grid or GRID, days=400,
                    costs=Costs(commission_bps=1.0), **kw)


def _run(tmp_path: Path, jobs: list[SweepJob], **kw):
    return run_sweep(jobs, name="t", strategies_root=kw.pop("root", STRATEGIES), data_dir=tmp_path / "data",
                     report_dir=tmp_path / "reports", **kw)


def _metrics_by_params(tmp_path: Path, sweep_id: str) -> dict[str, dict]:
    store = research_store(tmp_path / "data")
    rows = store.execute("SELECT params, metrics FROM backtest_runs WHERE sweep_id = ?", [sweep_id], write=False)
    return {p: json.loads(m) for p, m in rows}


def _key(params: dict) -> list:
    return sorted(params.items())


def test_expand_grid_order_and_errors():
    assert expand_grid({"A": [1, 2], "B": ["x", "y"]}) == [
        {"A": 1, "B": "x"}, {"A": 1, "B": "y"}, {"A": 2, "B": "x"}, {"A": 2, "B": "y"}]  # last key fastest
    assert len(expand_grid(GRID)) == 9
    for bad in ({}, {"A": []}, {"A": 3}, {"A": "abc"}):
        with pytest.raises(BacktestError):
            expand_grid(bad)


def test_3x3_sweep_persists_9_runs_with_params_and_digest(tmp_path):
    seen: list[tuple[int, int]] = []
    s = _run(tmp_path, [_job()], workers=1, progress=lambda d, t: seen.append((d, t)))
    assert (s.status, s.total, s.done, s.failed) == ("done", 9, 9, 0)
    assert seen == [(i, 9) for i in range(1, 10)]
    store = research_store(tmp_path / "data")
    runs = list_runs(store, sweep_id=s.sweep_id, limit=100)
    assert len(runs) == 9 and {r["sweep_id"] for r in runs} == {s.sweep_id}
    params = sorted((json.loads(p) for (p,) in store.execute(
        "SELECT params FROM backtest_runs WHERE sweep_id = ?", [s.sweep_id], write=False)), key=_key)
    assert params == sorted(expand_grid(GRID), key=_key)
    sweep = get_sweep(store, s.sweep_id)
    assert (sweep["status"], sweep["total"], sweep["done"], sweep["name"]) == ("done", 9, 9, "t")
    assert sweep["jobs"][0]["grid"] == GRID and sweep["finished_at"] is not None
    assert [x["id"] for x in list_sweeps(store)] == [s.sweep_id]
    # The digest exists, is recorded, and names the top run.
    top = leaderboard(store, s.sweep_id, limit=1)[0]
    assert s.digest_path == sweep["digest_path"] and top["id"] in Path(s.digest_path).read_text()
    # A sweep run reads back like any run: full equity curve with timestamps.
    run = get_run(store, top["id"])
    assert len(run["equity"]["t"]) == len(run["equity"]["v"]) > 200
    assert run["params"] == top["params"] and run["costs"]["commission_bps"] == 1.0


def test_get_sweep_of_a_sweep_just_stored(tmp_path):
    """Before its first write finishes a sweep row has no finish time, digest or errors: None, not NaN/NaT."""
    from datetime import UTC, datetime

    store = research_store(tmp_path / "data")
    at = datetime(2026, 12, 7, 21, 45, 26, 123456, tzinfo=UTC)
    store.execute("INSERT INTO sweeps (id, name, status, created_at, jobs, total) VALUES (?, ?, ?, ?, ?, ?)",
                  ["swnew1", "n", "running", at, json.dumps([{"name": "j"}]), 3])
    sweep = get_sweep(store, "swnew1")
    assert sweep == {"id": "swnew1", "name": "n", "status": "running", "created_at": "2026-12-07 21:45:26.123456+00:00",
                     "finished_at": None, "jobs": [{"name": "j"}], "total": 3, "done": 0, "failed": 0,
                     "elapsed_s": 0.0, "digest_path": None, "errors": []}


def test_local_pool_equals_in_process(tmp_path, monkeypatch):
    from trader.simulation import sweep

    monkeypatch.setattr(sweep, "GRID_POOL_MIN_RUNS", 0)  # 9 grid-pass runs would otherwise stay in one process
    started = []
    real_pool = sweep_runner.run_local_pool
    monkeypatch.setattr(sweep_runner, "run_local_pool", lambda *a: started.append(1) or real_pool(*a))
    monkeypatch.setattr(sweep, "run_local_pool", sweep_runner.run_local_pool)
    one = _run(tmp_path, [_job()], workers=1)
    pool = _run(tmp_path, [_job()], workers=2)
    assert started == [1]
    assert pool.done == 9
    assert _metrics_by_params(tmp_path, pool.sweep_id) == _metrics_by_params(tmp_path, one.sweep_id)


def test_leaderboard_order_follows_quality_score_and_dsr(tmp_path):
    s = _run(tmp_path, [_job(), _job("wide", {"FAST": [3, 20], "SLOW": [25]})], workers=1)
    store = research_store(tmp_path / "data")
    rows = leaderboard(store, s.sweep_id)
    assert len(rows) == 11 and [r["rank"] for r in rows] == list(range(1, 12))
    scores = [quality_score(get_run(store, r["id"])["metrics"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and scores == [r["score"] for r in rows]
    assert set(rows[0]) >= {"id", "job", "class_name", "params", "sharpe", "dsr", "total_return", "max_drawdown",
                            "trade_count", "profit_factor", "skew", "excess_kurtosis"}
    assert len(leaderboard(store, s.sweep_id, limit=3)) == 3
    # DSR of a run: its per-period returns against the per-period Sharpes of every run of ITS job.
    def returns(run_id):
        run = get_run(store, run_id)
        curve = np.concatenate(([run["capital"]], run["equity"]["v"]))
        return np.diff(curve) / curve[:-1]

    ma = [r for r in rows if r["job"] == "ma"]
    trials = [float(x.mean() / x.std(ddof=1)) for x in (returns(r["id"]) for r in ma)]
    assert ma[0]["dsr"] == pytest.approx(deflated_sharpe(returns(ma[0]["id"]), trials), rel=1e-9)
    assert all(0.0 <= r["dsr"] <= 1.0 for r in rows)
    with pytest.raises(SweepNotFound):
        leaderboard(store, "nope")
    with pytest.raises(SweepNotFound):
        get_sweep(store, "nope")


def test_dsr_falls_as_trials_rise():
    rng = np.random.default_rng(11)
    run = rng.normal(0.001, 0.01, 1000)  # the same candidate every time
    few = [run] + [rng.normal(0.0, 0.01, 1000) for _ in range(4)]
    many = few + [rng.normal(0.0, 0.01, 1000) for _ in range(95)]
    wider = [run] + [rng.normal(0.0, 0.01, 1000) * rng.uniform(0.2, 1.0) + rng.normal(0, 0.0015)
                     for _ in range(99)]
    d_few, d_many, d_wider = (job_deflated_sharpes(x)[0] for x in (few, many, wider))
    assert d_few > d_many > 0.0
    assert d_many != d_wider and min(d_many, d_wider) < d_few


def test_interrupted_sweep_resumes_without_rerunning_finished_runs(tmp_path):
    def stop_after_4(done, total):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, [_job()], workers=1, progress=stop_after_4)
    store = research_store(tmp_path / "data")
    (sweep,) = list_sweeps(store)
    assert (sweep["status"], sweep["done"]) == ("interrupted", 4)
    before = store.execute("SELECT id, created_at, combo_key FROM backtest_runs", write=False)
    assert len(before) == 4
    seen: list[int] = []
    s = _run(tmp_path, [], workers=1, resume=sweep["id"], progress=lambda d, t: seen.append(d))
    assert (s.sweep_id, s.status, s.total, s.done) == (sweep["id"], "done", 9, 9)
    assert seen == [5, 6, 7, 8, 9]
    after = store.execute("SELECT id, created_at, combo_key FROM backtest_runs", write=False)
    assert len(after) == 9 and set(before) <= set(after)  # same ids and created_at: not rerun
    assert len({k for _, _, k in after}) == 9
    for rid, _, _ in after:  # every run reads back with a full equity curve
        eq = get_run(store, rid)["equity"]
        assert len(eq["t"]) == len(eq["v"]) > 200
    # Resuming a finished sweep runs nothing.
    again = _run(tmp_path, [], workers=1, resume=sweep["id"])
    assert again.done == 9 and len(store.execute("SELECT id FROM backtest_runs", write=False)) == 9


def test_interrupting_a_pool_sweep_stops_the_workers_and_resumes(tmp_path, monkeypatch):
    import multiprocessing as mp

    from trader.simulation import sweep

    monkeypatch.setattr(sweep, "GRID_POOL_MIN_RUNS", 0)  # the pool even for 9 grid-pass runs

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, [_job()], workers=2, progress=stop)
    assert mp.active_children() == []  # the pool was shut down, no worker left behind
    store = research_store(tmp_path / "data")
    (sweep,) = list_sweeps(store)
    assert sweep["status"] == "interrupted" and sweep["done"] == 1
    s = _run(tmp_path, [], workers=2, resume=sweep["id"])
    assert (s.status, s.done) == ("done", 9)
    assert len(store.execute("SELECT id FROM backtest_runs", write=False)) == 9


_SWEEP_CHILD = """
import signal, sys, time
from pathlib import Path
from trader.simulation.backtester import Costs
from trader.simulation.sweep import SweepJob, run_sweep

def wait_after_3(done, total):
    if done == 3:
        print("done 3", flush=True)
        time.sleep(60)  # the parent's SIGTERM arrives here

tmp, strategies = Path(sys.argv[1]), Path(sys.argv[2])
job = SweepJob("ma", "ma_crossover.py", "MACrossover", (265598,), {"FAST": [5, 10, 15], "SLOW": [30, 40, 50]},
               days=400, costs=Costs(commission_bps=1.0))
try:
    run_sweep([job], name="t", strategies_root=strategies, data_dir=tmp / "data", report_dir=tmp / "reports",
              workers=1, progress=wait_after_3)
except KeyboardInterrupt:
    # the handler is only installed during the sweep
    print("interrupted; handler restored:", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
"""


def test_sigterm_marks_the_sweep_interrupted(tmp_path):
    # The sweep runs in a child process of its own, which the test signals (what cron's timeout or `kill`
    # sends) — never the test runner.
    child = subprocess.Popen([sys.executable, "-c", _SWEEP_CHILD, str(tmp_path), str(STRATEGIES)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done 3", child.communicate(timeout=30)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert (child.returncode, out.strip()) == (0, "interrupted; handler restored: True"), err
    (sweep,) = list_sweeps(research_store(tmp_path / "data"))
    assert (sweep["status"], sweep["done"]) == ("interrupted", 3)


def test_resume_with_changed_bars_keeps_each_runs_timestamps(tmp_path, monkeypatch):
    import trader.simulation.data as data

    def stop_after_2(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, [_job()], workers=1, progress=stop_after_2)
    store = research_store(tmp_path / "data")
    (sweep,) = list_sweeps(store)
    original = data.load_bars_between
    monkeypatch.setattr(data, "load_bars_between", lambda *a, **k: original(*a, **k).iloc[:-5])  # fewer bars now
    s = _run(tmp_path, [], workers=1, resume=sweep["id"])
    assert s.done == 9
    lengths = set()
    for (rid,) in store.execute("SELECT id FROM backtest_runs", write=False):
        eq = get_run(store, rid)["equity"]
        assert len(eq["t"]) == len(eq["v"])
        lengths.add(len(eq["v"]))
    assert len(lengths) == 2  # the first 2 runs on the original bars, the rest on the shorter ones


def test_failed_combos_are_recorded_and_retried_on_resume(tmp_path):
    root = tmp_path / "strategies"
    root.mkdir()
    (root / "picky.py").write_text(
        "import pandas as pd\nfrom trader.strategy.api import Strategy\n\n\n"
        "class Picky(Strategy):\n    N = 1\n\n"
        "    def signals(self, prices):\n"
        "        if self.N == 2:\n            raise RuntimeError('N=2 is broken')\n"
        "        return pd.Series(1.0, index=prices.index)\n")
    job = SweepJob("p", "picky.py", None, (265598,), {"N": [1, 2, 3]}, days=100)
    s = _run(tmp_path, [job], workers=1, root=root)
    assert (s.status, s.done, s.failed) == ("failed", 2, 1)
    sweep = get_sweep(research_store(tmp_path / "data"), s.sweep_id)
    assert len(sweep["errors"]) == 1 and "N=2 is broken" in sweep["errors"][0]
    ran: list[int] = []
    again = _run(tmp_path, [], workers=1, root=root, resume=s.sweep_id, progress=lambda d, t: ran.append(d))
    assert (again.done, again.failed, len(ran)) == (2, 1, 1)  # only the failed combo ran again


def test_bad_jobs_fail_before_anything_is_stored(tmp_path):
    with pytest.raises(BacktestError, match="no parameter"):
        _run(tmp_path, [_job(grid={"NOPE": [1]})], workers=1)
    with pytest.raises(BacktestError, match="unique"):
        _run(tmp_path, [_job(), _job()], workers=1)
    assert research_store(tmp_path / "data").execute("SELECT count(*) FROM sweeps")[0][0] == 0


def test_dry_run_estimates_and_persists_nothing(tmp_path):
    store = research_store(tmp_path / "data")
    counts = lambda: [store.execute(f"SELECT count(*) FROM {t}", write=False)[0][0]  # noqa: E731
                      for t in ("sweeps", "backtest_runs", "sweep_equity_index")]
    before = counts()
    est = estimate_sweep([_job(), _job("b", {"FAST": [5], "SLOW": [20, 30]})], strategies_root=STRATEGIES,
                         data_dir=tmp_path / "data", workers=2, sample=2)
    assert counts() == before == [0, 0, 0]
    assert [(j["name"], j["combinations"]) for j in est["jobs"]] == [("ma", 9), ("b", 2)]
    assert est["total_runs"] == 11 and est["workers"] == 2
    assert all(j["per_run_s"] > 0 for j in est["jobs"]) and est["estimated_wall_s"] > 0


def test_dask_cluster_gives_the_same_results_as_the_local_pool(tmp_path):
    from distributed import LocalCluster

    local = _run(tmp_path, [_job()], workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster:
        dask = _run(tmp_path, [_job()], cluster=cluster.scheduler_address)
    assert (dask.status, dask.done) == ("done", 9)
    # Thread workers share this process: the job was prepared once, under its payload token.
    assert any(k.startswith(f"{dask.sweep_id}:0:") for k in sweep_runner._PREPARED)
    assert _metrics_by_params(tmp_path, dask.sweep_id) == _metrics_by_params(tmp_path, local.sweep_id)


def test_sweep_lock_admits_one_holder(tmp_path):
    with SweepLock(tmp_path):
        with pytest.raises(SweepLocked, match=r"pid \d+"):
            SweepLock(tmp_path).acquire()
        # Another process is refused too (cron overlap).
        code = ("import sys; from trader.simulation.sweep import SweepLock\n"
                f"try:\n    SweepLock({str(tmp_path)!r}).acquire()\nexcept Exception as e:\n"
                "    print(type(e).__name__, e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 3 and "SweepLocked" in out.stdout
    with SweepLock(tmp_path) as again:  # released on exit
        assert again.path.exists()


def test_job_deflated_sharpes_equal_the_per_run_library_function():
    from trader.simulation.stats import deflated_sharpe

    rng = np.random.default_rng(3)
    returns = [rng.standard_t(4, 500) * 0.01 + mu for mu in np.linspace(-0.001, 0.002, 12)]
    returns.append(np.zeros(500))  # a run that never traded
    trials = [float(r.mean() / r.std(ddof=1)) if r.std() > 0 else 0.0 for r in returns]
    expected = [deflated_sharpe(r, trials) for r in returns]
    assert job_deflated_sharpes(returns) == pytest.approx(expected, abs=1e-9)
    assert job_deflated_sharpes(returns[:1]) == pytest.approx([deflated_sharpe(returns[0], trials[:1])], abs=1e-9)


def test_leaderboard_ranks_from_stored_moments_as_from_the_equity_curves(tmp_path):
    """Sweep runs store their return moments; the leaderboard built from them equals the one built by decoding
    every stored equity curve (runs stored before moments existed), DSR for DSR."""
    from trader.simulation.sweep import _LEADERBOARD_CACHE

    s = _run(tmp_path, [_job()], workers=1)
    store = research_store(tmp_path / "data")
    stored = store.execute("SELECT count(*) FROM backtest_runs WHERE sweep_id = ? AND moments IS NOT NULL",
                           [s.sweep_id], write=False)[0][0]
    assert stored == 9
    fast = leaderboard(store, s.sweep_id)
    store.execute("UPDATE backtest_runs SET moments = NULL WHERE sweep_id = ?", [s.sweep_id])
    _LEADERBOARD_CACHE.clear()
    slow = leaderboard(store, s.sweep_id)
    assert [r["id"] for r in fast] == [r["id"] for r in slow]
    for a, b in zip(fast, slow, strict=True):
        assert a["dsr"] == pytest.approx(b["dsr"], abs=1e-12) and a["skew"] == pytest.approx(b["skew"], abs=1e-12)
        assert a["excess_kurtosis"] == pytest.approx(b["excess_kurtosis"], abs=1e-12)
    assert len({r["dsr"] for r in fast}) > 1  # the runs differ, so a constant would fail


def test_sweep_ranking_does_not_import_scipy():
    code = ("import sys, numpy as np; from trader.simulation.sweep import job_deflated_sharpes; "
            "job_deflated_sharpes([np.random.default_rng(1).normal(0, .01, 300) for _ in range(5)]); "
            "print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_worker_trade_records_equal_the_trades_of_a_plain_run():
    """Sweep workers write trades straight from the fill loop's rows (timestamps from a per-job table): the same
    records, in the same order, as the `Trade`s of a plain run (one conId and several)."""
    from dataclasses import asdict

    from trader.simulation.backtester import _prepare, run_backtest
    from trader.simulation.data import sim_bars
    from trader.simulation.sweep_runner import job_payload, run_one
    from trader.strategy.loader import load_strategy_class

    cls = load_strategy_class(STRATEGIES, "ma_crossover.py")
    frames = {265598: _prepare(sim_bars(265598, 300)), 272093: _prepare(sim_bars(272093, 250))}
    for bars in ({265598: frames[265598]}, frames):
        payload = job_payload("t", strategies_root=STRATEGIES, strategy_file="ma_crossover.py",
                              class_name="MACrossover", source=(STRATEGIES / "ma_crossover.py").read_text(),
                              bars=bars, capital=1e5, quantity=None, costs=Costs(commission_bps=1.0),
                              mode="vectorized")
        res = run_one(payload, {"FAST": 3, "SLOW": 9})
        got = stored_trades(res["trades_json"], res["trades_z"])
        plain = run_backtest(cls().with_params(FAST=3, SLOW=9), bars, capital=1e5, costs=Costs(commission_bps=1.0))
        want = [{**asdict(t), "entry_time": str(t.entry_time), "exit_time": str(t.exit_time)} for t in plain.trades]
        assert len(want) > 10 and got == want


def test_sweep_runs_store_equity_compactly_and_every_stored_form_reads_the_same(tmp_path):
    """A grid-pass sweep run stores its equity as segments (`equity_seg`, the job's closes once), other sweep runs
    as float64 bytes (`equity_v`), older runs as a JSON list: `get_run`, the PBO and the leaderboard read each form
    as the per-run curve rounded to 6 decimals."""
    import numpy as np

    from trader.simulation.backtester import _prepare, run_backtest
    from trader.simulation.data import load_bars_between
    from trader.simulation.research import sweep_overfit
    from trader.simulation.sweep import _LEADERBOARD_CACHE
    from trader.strategy.loader import load_strategy_class

    s = _run(tmp_path, [_job()], workers=1)
    store = research_store(tmp_path / "data")
    rid, params, seg, blob, eq_text = store.execute(
        "SELECT id, params, equity_seg, equity_v, equity FROM backtest_runs WHERE sweep_id = ? ORDER BY id LIMIT 1",
        [s.sweep_id], write=False)[0]
    assert isinstance(seg, bytes) and blob is None and json.loads(eq_text) == {}
    bars = _prepare(load_bars_between(265598, None, None, 400, "1 day", str(tmp_path / "data")))
    assert len(seg) < 8 * len(bars) / 4  # a few segments, not a value per bar
    cls = load_strategy_class(STRATEGIES, "ma_crossover.py", "MACrossover")
    want = run_backtest(cls().with_params(**json.loads(params)), {265598: bars}, costs=Costs(commission_bps=1.0))
    run = get_run(store, rid)
    assert "equity_v" not in run and "equity_seg" not in run and run["equity"]["v"] == want.equity.round(6).tolist()
    assert len(run["equity"]["t"]) == len(run["equity"]["v"])
    ids = [r for (r,) in store.execute("SELECT id FROM backtest_runs WHERE sweep_id = ?", [s.sweep_id], write=False)]
    curves = {r: get_run(store, r)["equity"]["v"] for r in ids}
    pbo = sweep_overfit(store, s.sweep_id, blocks=4)[0]["pbo"]
    _LEADERBOARD_CACHE.clear()
    store.execute("UPDATE backtest_runs SET moments = NULL WHERE sweep_id = ?", [s.sweep_id])
    dsrs = [r["dsr"] for r in leaderboard(store, s.sweep_id)]
    for form in ("bytes", "json"):
        for run_id, values in curves.items():
            if form == "bytes":
                store.execute("UPDATE backtest_runs SET equity_v = ?, equity_seg = NULL WHERE id = ?",
                              [np.asarray(values, dtype="<f8").tobytes(), run_id])
            else:
                store.execute("UPDATE backtest_runs SET equity = ?, equity_v = NULL WHERE id = ?",
                              [json.dumps({"v": values}), run_id])
        _LEADERBOARD_CACHE.clear()
        assert {r: get_run(store, r)["equity"]["v"] for r in ids} == curves, form
        assert [r["dsr"] for r in leaderboard(store, s.sweep_id)] == dsrs, form
        assert sweep_overfit(store, s.sweep_id, blocks=4)[0]["pbo"] == pbo, form


def test_long_trade_lists_are_stored_compressed_and_read_back_the_same(tmp_path, monkeypatch):
    """Trades JSON of TRADES_Z_MIN bytes or more (a year of one-minute bars: ~1 MB a run) is stored zlib-compressed
    in `trades_z` ('' in `trades`), shorter stays text; `get_run` returns the same trades from either form."""
    from trader.simulation import store as run_store

    text = _run(tmp_path, [_job()], workers=1)
    monkeypatch.setattr(run_store, "TRADES_Z_MIN", 0)  # every run's trades compressed
    packed = _run(tmp_path, [_job()], workers=1)
    store = research_store(tmp_path / "data")

    def stored(sweep_id: str) -> dict[str, tuple]:
        rows = store.execute("SELECT params, id, trades, trades_z FROM backtest_runs WHERE sweep_id = ?",
                             [sweep_id], write=False)
        return {p: (rid, t, z) for p, rid, t, z in rows}

    plain, small = stored(text.sweep_id), stored(packed.sweep_id)
    assert plain.keys() == small.keys() and len(plain) == 9
    assert all(t and z is None for _, t, z in plain.values())  # daily runs: a few KB of text each
    assert all(t == "" and isinstance(z, bytes) for _, t, z in small.values())
    for params, (rid, t, _) in plain.items():
        got = get_run(store, small[params][0])["trades"]
        assert got == get_run(store, rid)["trades"] == json.loads(t) and len(got) > 0


def test_sweep_batches_are_appended_without_the_checkpoint_vacuum(tmp_path, monkeypatch):
    """Each batch of runs stays its own row group: DuckDB's checkpoint vacuum, which merged them by reading and
    rewriting them at every batch (2-3.5 GiB and 5-10 s a batch with one-minute runs), is off for sweep writes."""
    from trader.simulation import sweep as sweep_mod

    monkeypatch.setattr(sweep_writer, "BATCH_ROWS", 3)
    monkeypatch.setattr(sweep_mod, "HOLD_CELLS", 0)  # each batch its own store open and checkpoint
    s = _run(tmp_path, [_job()], workers=1)
    assert s.done == 9
    store = research_store(tmp_path / "data")
    ((groups,),) = store.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('backtest_runs')",
                                 write=False)
    assert groups >= 3, groups  # three batches of three runs; merged into one with the vacuum on
    assert len(_metrics_by_params(tmp_path, s.sweep_id)) == 9


def test_a_short_sweep_holds_its_store_from_first_write_to_last(tmp_path, monkeypatch):
    """A short grid pass in this process opens the research store once for all its writes (batches included) and
    checkpoints it at the end; a longer one (over HOLD_CELLS) opens it for each write: the first, each batch, the
    last (other processes may read in between)."""
    from trader.data import store as store_mod
    from trader.simulation import sweep as sweep_mod

    opens: list[str] = []
    real_open = store_mod.DuckStore._open
    monkeypatch.setattr(store_mod.DuckStore, "_open",
                        lambda self, *, write: opens.append(self.path.name) or real_open(self, write=write))
    monkeypatch.setattr(sweep_writer, "BATCH_ROWS", 4)  # a batch in the middle too
    research_store(tmp_path / "data").schema_version()  # the schema exists before counting
    for hold_cells, want in ((4_000_000, 1), (0, 4)):  # 9 runs: first write, 4 + 4 runs, 1 run with the status
        monkeypatch.setattr(sweep_mod, "HOLD_CELLS", hold_cells)
        opens.clear()
        s = _run(tmp_path, [_job()], workers=2)
        assert s.status == "done" and s.done == 9
        assert opens.count("research.duckdb") == want, opens
        assert len(_metrics_by_params(tmp_path, s.sweep_id)) == 9
        wal = tmp_path / "data" / "research.duckdb.wal"
        assert not wal.exists() or wal.stat().st_size == 0  # the last close checkpointed every write
