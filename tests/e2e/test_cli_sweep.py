"""`mmr bt-sweep` / `sweep run|list|show` end to end (no services needed: bars from the simulated market)."""
from __future__ import annotations

import json
from pathlib import Path

from trader.testing import mmr, platform_env

STRATEGIES = Path(__file__).parents[2] / "strategies"
GRID = '{"FAST":[5,10,20],"SLOW":[30,50,100]}'


def _env(tmp_path: Path) -> dict[str, str]:
    env = platform_env(tmp_path / "home")
    env["STRATEGIES_DIRECTORY"] = str(STRATEGIES)
    return env


def _ok(env, *args):
    p = mmr(env, "--json", *args, timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    return json.loads(p.stdout)


def test_bt_sweep_leaderboard_digest_list_show_and_plot(tmp_path):
    env = _env(tmp_path)
    out = _ok(env, "bt-sweep", "-s", "strategies/ma_crossover.py", "--conids", "265598", "--days", "600",
              "--grid", GRID, "--commission-bps", "1", "--workers", "1")
    summary, board = out["sweep"], out["leaderboard"]
    assert summary["status"] == "done" and summary["total"] == summary["done"] == 9 and summary["failed"] == 0
    assert len(board) == 9 and [r["rank"] for r in board] == list(range(1, 10))
    assert {(r["params"]["FAST"], r["params"]["SLOW"]) for r in board} == {
        (f, s) for f in (5, 10, 20) for s in (30, 50, 100)}
    scores = [r["score"] for r in board]
    assert scores == sorted(scores, reverse=True)
    digest = Path(out["digest"])
    assert digest.parent == tmp_path / "home" / "reports"
    assert digest.name.startswith(f"sweep_{summary['sweep_id']}_ma_crossover_") and digest.suffix == ".md"
    text = digest.read_text()
    assert f"top run: `{board[0]['id']}`" in text and f"mmr backtests show {board[0]['id']}" in text
    # Nothing is stored in this MMR_HOME: the sweep ran on simulated bars and every report says so.
    assert len(out["warnings"]) == 1 and "SIMULATED" in out["warnings"][0]
    assert "**Warning: SIMULATED bars** for conId 265598" in text

    listed = _ok(env, "sweep", "list")
    assert [s["id"] for s in listed] == [summary["sweep_id"]] and listed[0]["status"] == "done"
    png = tmp_path / "heat.png"
    shown = _ok(env, "sweep", "show", summary["sweep_id"], "--plot", str(png))
    assert [r["id"] for r in shown["leaderboard"]] == [r["id"] for r in board]
    assert shown["sweep"]["jobs"][0]["grid"] == json.loads(GRID)
    assert shown["plot"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    bad_axis = mmr(env, "--json", "sweep", "show", summary["sweep_id"], "--plot", str(png), "--x", "NOPE")
    assert bad_axis.returncode == 2 and "NOPE" in bad_axis.stdout
    unknown = mmr(env, "--json", "sweep", "show", "nosuchid")
    assert unknown.returncode == 1 and "error" in json.loads(unknown.stdout)


def test_sweep_run_dry_run_runs_nothing_and_lock_refuses_a_second_run(tmp_path):
    from trader.config import mmr_paths
    from trader.simulation.sweep import SweepLock

    env = _env(tmp_path)
    spec = tmp_path / "nightly.yaml"
    spec.write_text("name: nightly\nworkers: 1\ndefaults: {days: 400, costs: {commission_bps: 1}}\njobs:\n"
                    "  - {strategy: ma_crossover.py, conids: [265598], grid: {FAST: [5, 10], SLOW: [30, 50]}}\n"
                    "  - {name: rsi, strategy: rsi_mean_reversion.py, conids: [265598], grid: {PERIOD: [7, 14]}}\n")
    dry = _ok(env, "sweep", "run", str(spec), "--dry-run")
    assert dry["dry_run"] is True and dry["total_runs"] == 6
    assert {j["name"]: j["combinations"] for j in dry["jobs"]} == {"ma_crossover": 4, "rsi": 2}
    assert dry["estimated_wall_s"] >= 0
    assert _ok(env, "sweep", "list") == []  # nothing was run or stored
    assert _ok(env, "backtests") == []
    assert not list((tmp_path / "home" / "reports").glob("sweep_*.md"))

    with SweepLock(mmr_paths(env).ensure().run_dir):
        held = mmr(env, "--json", "sweep", "run", str(spec), timeout=60)
    assert held.returncode != 0 and json.loads(held.stdout)["error"]["type"] == "SweepLocked"
    assert _ok(env, "sweep", "list") == []

    done = _ok(env, "sweep", "run", str(spec))
    assert done["sweep"]["done"] == 6 and {r["job"] for r in done["leaderboard"]} == {"ma_crossover", "rsi"}
    text = Path(done["digest"]).read_text()
    assert "## ma_crossover" in text and "## rsi" in text

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: n\njobs: [{strategy: ma_crossover.py, conids: [1], grid: {FAST: 5}}]\n")
    err = mmr(env, "--json", "sweep", "run", str(bad))
    message = json.loads(err.stdout)["error"]["message"]
    assert err.returncode == 1 and str(bad) in message and "jobs[0].grid.FAST" in message
    failed = mmr(env, "--json", "bt-sweep", "-s", "ma_crossover.py", "--conids", "265598", "--days", "200",
                 "--grid", '{"FAST":[-1,5]}', "--workers", "1", timeout=60)
    error = json.loads(failed.stdout)["error"]
    assert failed.returncode == 1 and error["type"] == "SweepFailed" and "1 failed" in error["message"]
    unknown_param = mmr(env, "--json", "bt-sweep", "-s", "ma_crossover.py", "--conids", "1", "--grid",
                        '{"FASTER":[1]}')
    assert unknown_param.returncode == 1 and "FASTER" in json.loads(unknown_param.stdout)["error"]["message"]


def test_a_running_sweep_whose_process_died_shows_as_interrupted(tmp_path):
    from trader.config import mmr_paths
    from trader.data.store import research_store
    from trader.simulation.sweep import SweepLock

    env = _env(tmp_path)
    out = _ok(env, "bt-sweep", "-s", "ma_crossover.py", "--conids", "265598", "--days", "300",
              "--grid", '{"FAST":[5,10]}', "--workers", "1")
    sid = out["sweep"]["sweep_id"]
    paths = mmr_paths(env).ensure()
    # What a kill -9 mid-sweep leaves behind: the row still says "running".
    research_store(paths.data_dir).execute("UPDATE sweeps SET status = 'running' WHERE id = ?", [sid])
    with SweepLock(paths.run_dir):  # while a sweep process holds the lock, "running" is believed
        assert _ok(env, "sweep", "list")[0]["status"] == "running"
    row = _ok(env, "sweep", "list")[0]
    assert row["status"] == "interrupted" and f"--resume {sid}" in row["note"]
    assert _ok(env, "sweep", "show", sid)["sweep"]["status"] == "interrupted"


def test_a_sweep_process_ends_without_the_interpreter_teardown_but_as_sys_exit_would():
    """bt-sweep/sweep run end through `_exit_without_teardown` (the tests above run them, exit codes and output
    included): its exit code, non-daemon threads joined, atexit handlers run and stdout flushed."""
    import subprocess
    import sys

    code = ("import atexit, sys, threading, time\n"
            "from trader.mmr_cli import _exit_without_teardown\n"
            "atexit.register(lambda: sys.stdout.write('atexit ran\\n'))\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), sys.stdout.write('thread done\\n'))).start()\n"
            "sys.stdout.write('{\"out\": 1}\\n')\n"
            "_exit_without_teardown(3)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout.splitlines()) == (3, ['{"out": 1}', "thread done", "atexit ran"]), p.stderr
