"""A short in-process grid sweep writes each chunk's runs from a worker thread on the store connection it holds
(`SweepWriter.flush_behind`, `DuckStore.lend`) while the next chunk computes: the same stored results, and a failed
write behind fails the sweep."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from trader.data import store as store_mod
from trader.data.store import DuckStore, research_store
from trader.simulation import sweep as sweep_mod
from trader.simulation import sweep_writer
from trader.simulation.backtester import Costs
from trader.simulation.sweep import SweepJob, get_sweep, leaderboard, run_sweep

STRATEGIES = Path(__file__).parents[2] / "strategies"
GRID = {"FAST": [5, 10, 15], "SLOW": [30, 40, 50]}


def _run(data: Path, workers: int = 1):
    job = SweepJob("ma", "ma_crossover.py", "MACrossover", (265598,), GRID, days=400, costs=Costs(commission_bps=1.0))
    return run_sweep([job], name="t", strategies_root=STRATEGIES, data_dir=data, report_dir=data.parent / "reports",
                     workers=workers)


def _stored(data: Path, sweep_id: str) -> list[tuple]:
    return research_store(data).execute(
        "SELECT * EXCLUDE (id, created_at, sweep_id) FROM backtest_runs WHERE sweep_id = ? ORDER BY combo_key",
        [sweep_id], write=False)


def _writes(monkeypatch) -> list[tuple[str, int]]:
    """(thread name, runs) of every `SweepWriter._write`."""
    seen: list[tuple[str, int]] = []
    real = sweep_writer.SweepWriter._write

    def write(self, rows, *args):
        seen.append((threading.current_thread().name, len(rows)))
        return real(self, rows, *args)

    monkeypatch.setattr(sweep_writer.SweepWriter, "_write", write)
    return seen


def test_each_chunk_is_written_behind_with_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_mod, "GRID_CHUNK", 4)  # 9 runs: chunks of 4, 4 and 1
    writes = _writes(monkeypatch)
    behind = _run(tmp_path / "a" / "data")
    assert behind.status == "done" and behind.done == 9
    # The first write (sweep row, no runs), two chunks behind, the last chunk with the status in this thread.
    assert writes == [("MainThread", 0), ("sweep-writer", 4), ("sweep-writer", 4), ("MainThread", 1)]
    writes.clear()
    monkeypatch.setattr(sweep_writer.SweepWriter, "flush_behind", sweep_writer.SweepWriter.flush)  # every write here
    here = _run(tmp_path / "b" / "data")
    assert all(name == "MainThread" for name, _ in writes) and len(writes) == 4
    assert _stored(tmp_path / "a" / "data", behind.sweep_id) == _stored(tmp_path / "b" / "data", here.sweep_id)
    ranked = [[{k: v for k, v in r.items() if k != "id"} for r in leaderboard(research_store(d), s.sweep_id)]
              for d, s in ((tmp_path / "a" / "data", behind), (tmp_path / "b" / "data", here))]
    assert ranked[0] == ranked[1] and len(ranked[0]) == 9
    wal = tmp_path / "a" / "data" / "research.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the last close checkpointed every write


@pytest.mark.parametrize(("chunk", "stored"), [(4, 4), (8, 1)])
def test_a_failed_write_behind_fails_the_sweep(tmp_path, monkeypatch, chunk, stored):
    """The first chunk's write behind fails. Chunks of 4: the error surfaces when the second chunk is due to be
    written behind, which stops the sweep there (as a failed write in this thread does), and the last write stores
    that chunk. Chunks of 8: it surfaces at the last write, which still stores the last run and the failed status."""
    monkeypatch.setattr(sweep_mod, "GRID_CHUNK", chunk)
    real = sweep_writer.SweepWriter._write

    def write(self, rows, *args):
        if threading.current_thread().name == "sweep-writer" and not getattr(self, "failed_once", False):
            self.failed_once = True
            raise OSError("disk full")
        return real(self, rows, *args)

    monkeypatch.setattr(sweep_writer.SweepWriter, "_write", write)
    data = tmp_path / "data"
    with pytest.raises(OSError, match="disk full"):
        _run(data)
    store = research_store(data)
    ((sweep_id,),) = store.execute("SELECT id FROM sweeps", write=False)
    sweep = get_sweep(store, sweep_id)
    assert sweep["status"] == "failed"
    assert len(_stored(data, sweep_id)) == stored


def test_lend_hands_the_held_connection_to_one_other_thread(tmp_path, monkeypatch):
    store = DuckStore(tmp_path / "x.duckdb", ["CREATE TABLE IF NOT EXISTS t (x INTEGER)"])
    store.schema_version()
    opens: list[bool] = []
    real_open = store_mod.DuckStore._open
    monkeypatch.setattr(store_mod.DuckStore, "_open", lambda self, *, write: opens.append(write) or
                        real_open(self, write=write))
    with pytest.raises(RuntimeError, match="no connection"):
        store.lend()
    errors: list[BaseException] = []
    with store.connect(write=True):
        borrow = store.lend()

        def borrower() -> None:
            try:
                with borrow():
                    with store.transaction():  # joins the lent connection: no open of its own
                        store.execute("INSERT INTO t VALUES (1), (2)")
                    with pytest.raises(RuntimeError, match="already holds"), borrow():
                        pass
            except BaseException as exc:  # noqa: BLE001 - reported to the test's thread
                errors.append(exc)

        worker = threading.Thread(target=borrower)
        worker.start()
        worker.join()
        assert store.execute("SELECT sum(x) FROM t", write=False) == [(3,)]
    assert not errors and opens == [True]  # the lender's one open
    assert store.execute("SELECT count(*) FROM t", write=False) == [(2,)]


def test_sweep_writes_skip_only_the_analysis_of_unused_string_compressions(tmp_path, monkeypatch):
    """With DuckDB's older fsst/dictionary methods off for sweep writes, every column is stored with the same
    compression as with them on, and the runs read back the same."""
    def storage(data: Path) -> list[tuple]:
        return research_store(data).execute(
            "SELECT DISTINCT column_name, compression FROM pragma_storage_info('backtest_runs') ORDER BY 1, 2",
            write=False)

    long_trades = {"FAST": [2, 3], "SLOW": [30, 40]}  # several KB of trades text a run
    job = SweepJob("ma", "ma_crossover.py", "MACrossover", (265598,), long_trades, days=3000)
    on = run_sweep([job], name="t", strategies_root=STRATEGIES, data_dir=tmp_path / "on", report_dir=tmp_path / "r",
                   workers=1)
    monkeypatch.setattr(sweep_writer, "skip_legacy_string_compression", lambda store: None)
    off = run_sweep([job], name="t", strategies_root=STRATEGIES, data_dir=tmp_path / "off",
                    report_dir=tmp_path / "r", workers=1)
    assert storage(tmp_path / "on") == storage(tmp_path / "off")
    assert _stored(tmp_path / "on", on.sweep_id) == _stored(tmp_path / "off", off.sweep_id)


def test_the_last_chunks_runs_stay_for_the_last_write(tmp_path, monkeypatch):
    """Every chunk but the last is written behind; the last one's runs go with the final status (one write)."""
    writes = _writes(monkeypatch)
    monkeypatch.setattr(sweep_mod, "GRID_CHUNK", 3)  # 9 runs: chunks of 3
    s = _run(tmp_path / "data")
    assert s.done == 9
    assert writes == [("MainThread", 0), ("sweep-writer", 3), ("sweep-writer", 3), ("MainThread", 3)]
    writes.clear()
    monkeypatch.setattr(sweep_mod, "GRID_CHUNK", 9)  # one chunk: nothing behind
    _run(tmp_path / "data")
    assert writes == [("MainThread", 0), ("MainThread", 9)]


def test_an_interrupt_while_a_chunk_is_written_behind_keeps_it_and_resumes(tmp_path, monkeypatch):
    """Ctrl-C after the first chunk went behind: the last write waits for it, the sweep is interrupted with every
    finished run stored, and resuming it runs only the rest."""
    monkeypatch.setattr(sweep_mod, "GRID_CHUNK", 3)  # 9 runs: chunks of 3, the first written behind

    def stop_after_4(done, total):
        if done == 4:
            raise KeyboardInterrupt

    job = SweepJob("ma", "ma_crossover.py", "MACrossover", (265598,), GRID, days=400, costs=Costs(commission_bps=1.0))
    data = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        run_sweep([job], name="t", strategies_root=STRATEGIES, data_dir=data, report_dir=tmp_path / "r", workers=1,
                  progress=stop_after_4)
    store = research_store(data)
    ((sweep_id,),) = store.execute("SELECT id FROM sweeps", write=False)
    sweep = get_sweep(store, sweep_id)
    assert (sweep["status"], sweep["done"]) == ("interrupted", 4) and len(_stored(data, sweep_id)) == 4
    s = run_sweep([], name="t", strategies_root=STRATEGIES, data_dir=data, report_dir=tmp_path / "r", workers=1,
                  resume=sweep_id)
    assert (s.status, s.done) == ("done", 9)
    clean = _run(tmp_path / "clean" / "data")
    assert _stored(data, sweep_id) == _stored(tmp_path / "clean" / "data", clean.sweep_id)


def test_stored_params_and_combo_keys_are_json_dumps_text():
    """The encoders built once write what json.dumps wrote per call (stored params, combo keys)."""
    import datetime as dt
    import json

    from trader.simulation.sweep_runner import PARAMS_JSON, combo_key

    for params in ({"FAST": 5, "SLOW": 30}, {"b": 1.5, "a": True, "c": None, "d": "x y", "e": [1, 2]},
                   {"Z": dt.date(2024, 1, 2), "é": 1e-9}, {}):
        assert PARAMS_JSON(params) == json.dumps(params, default=str)
        assert combo_key(params) == json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
