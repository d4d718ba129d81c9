"""The Dask executor (trader/simulation/sweep_dask.py) hands back every chunk's results and lets the cluster free
each chunk once its results are taken: a 10,000-run one-minute sweep must not keep every equity curve on its
workers until the end."""
from __future__ import annotations

from typing import Any

from trader.testing import eventually


def _echo(payload: dict[str, Any], params_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"x": payload["x"], **p} for p in params_list]


def test_finished_chunks_are_released_on_the_cluster(monkeypatch):
    from distributed import Client, LocalCluster

    from trader.simulation import sweep_dask

    monkeypatch.setattr(sweep_dask, "run_chunk", _echo)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster, Client(cluster) as client:

        def in_memory() -> list[str]:
            return client.run_on_scheduler(
                lambda dask_scheduler: sorted(str(k) for k, t in dask_scheduler.tasks.items() if t.state == "memory"))

        got, held = [], None
        for job, chunk in sweep_dask.run_on_cluster(client, [{"x": 7}, {"x": 8}],
                                                    [(0, [{"a": 1}, {"a": 2}]), (1, [{"a": 3}]), (0, [{"a": 4}])]):
            got.append((job, chunk))
            if len(got) == 3:  # the generator is still running: every finished chunk must be gone from the cluster
                held = eventually(lambda: not any("_echo" in k for k in in_memory()), timeout=60.0) or in_memory()
        assert sorted(got, key=lambda t: (t[0], t[1][0]["a"])) == [(0, [{"x": 7, "a": 1}, {"x": 7, "a": 2}]),
                                                                  (0, [{"x": 7, "a": 4}]), (1, [{"x": 8, "a": 3}])]
        assert held is True, held


def test_the_cluster_gets_a_bounded_number_of_chunks_in_flight(monkeypatch):
    """Back-pressure: chunks are submitted as earlier ones are taken (`sweep_runner.in_flight`), not all at once."""
    from distributed import Client, LocalCluster

    from trader.simulation import sweep_dask
    from trader.simulation.sweep_runner import in_flight

    monkeypatch.setattr(sweep_dask, "run_chunk", _echo)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        submitted = [0]
        real_submit = client.submit

        def counting_submit(*args: Any, **kwargs: Any) -> Any:
            submitted[0] += 1
            return real_submit(*args, **kwargs)

        monkeypatch.setattr(client, "submit", counting_submit)
        tasks = [(k % 2, [{"a": k}]) for k in range(12)]
        got, ahead = [], []
        for _, chunk in sweep_dask.run_on_cluster(client, [{"x": 7}, {"x": 8}], tasks):
            got.append(chunk[0]["a"])
            ahead.append(submitted[0] - len(got))
        assert sorted(got) == list(range(12))
        assert max(ahead) <= in_flight(1), ahead  # the one being handed over counts as not taken yet
        assert submitted[0] == 12
