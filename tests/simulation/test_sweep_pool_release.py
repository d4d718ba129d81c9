"""The local pool executor (sweep_runner.run_local_pool) lets go of each finished chunk once its results are
taken: a 10,000-run one-minute sweep must not keep every chunk's results (~1 MB a run) in the parent."""
from __future__ import annotations

import concurrent.futures
import gc
import weakref

from trader.simulation import sweep_runner


def _chunk(job_index: int, params_list: list) -> tuple[int, list]:
    return job_index, [{"p": p, "blob": "x" * 1000} for p in params_list]


def test_finished_chunks_are_not_kept_by_the_pool_executor(monkeypatch):
    made: list[weakref.ref] = []

    class Recording(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            fut = super().submit(*args, **kwargs)
            made.append(weakref.ref(fut))
            return fut

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recording)
    monkeypatch.setattr(sweep_runner, "run_pool_chunk", _chunk)
    tasks = [(0, [1, 2]), (1, [3]), (0, [4])]
    got, alive_before_last = [], None
    for job, chunk in sweep_runner.run_local_pool([{}, {}], tasks, workers=2):
        got.append((job, [c["p"] for c in chunk]))
        if len(got) == len(tasks):  # the generator still runs: the chunks taken before are gone
            del chunk
            gc.collect()
            alive_before_last = sum(ref() is not None for ref in made)
    assert sorted(got) == [(0, [1, 2]), (0, [4]), (1, [3])]
    assert len(made) == 3 and alive_before_last is not None and alive_before_last <= 1, alive_before_last


def test_the_pool_keeps_a_bounded_number_of_chunks_in_flight(monkeypatch):
    """Back-pressure: chunks are submitted as earlier ones are taken, never all at once, so results the writer has
    not taken yet cannot pile up in the parent (the 10,000-run one-minute sweep peaked at 5.6 GiB that way)."""
    submitted = [0]

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            submitted[0] += 1
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Counting)
    monkeypatch.setattr(sweep_runner, "run_pool_chunk", _chunk)
    tasks = [(k % 3, [k]) for k in range(20)]
    window = sweep_runner.in_flight(2)
    got, ahead = [], []
    for _job, chunk in sweep_runner.run_local_pool([{}, {}, {}], tasks, workers=2):
        got.append(chunk[0]["p"])
        ahead.append(submitted[0] - len(got))  # submitted, not yet taken (this one counted as taken)
    assert sorted(got) == list(range(20))
    assert max(ahead) <= window, ahead
    assert submitted[0] == 20
