"""Run a sweep's chunks on a Dask distributed cluster (`--cluster tcp://HOST:8786`).

Each job's payload (bars as numpy arrays + strategy source, see `sweep_runner`) is scattered ONCE with
``broadcast=True``, so every worker holds one copy; each task then references that future and carries only a
list of params. Workers need the same MMR version installed (the task function is `sweep_runner.run_chunk`,
shipped by name). Dask pickles its own task messages; we hand it plain data and module-level functions only.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from trader.simulation.sweep_runner import in_flight, run_chunk


def run_on_cluster(cluster: Any, payloads: list[dict[str, Any]], tasks: list[tuple[int, list[dict[str, Any]]]],
                   ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Yield (job index, chunk results) as chunks finish on the cluster. `cluster` is a scheduler address
    ("tcp://host:8786") or an existing `distributed.Client`. Leaving the generator early (an error or Ctrl-C in
    the caller) cancels the outstanding tasks and closes a client it opened."""
    import itertools

    from distributed import Client, as_completed

    own = not hasattr(cluster, "submit")
    client = Client(cluster) if own else cluster
    futures: set[Any] = set()
    try:
        scattered = [client.scatter([p], broadcast=True, hash=False)[0] for p in payloads]
        index_of: dict[str, int] = {}
        window = in_flight(max(1, sum(client.nthreads().values())))
        todo = iter(tasks)

        def submit(n: int) -> list[Any]:  # at most `window` chunks submitted and not yet taken (back-pressure)
            out = []
            for job_index, params_list in itertools.islice(todo, n):
                fut = client.submit(run_chunk, scattered[job_index], params_list, pure=False)
                index_of[fut.key] = job_index
                futures.add(fut)
                out.append(fut)
            return out

        running = as_completed(submit(window))
        for fut in running:
            result = fut.result()
            # Drop our reference so the worker frees the chunk's results (equity curves of one-minute bars: ~1 MB
            # a run) instead of holding every finished chunk until the sweep ends.
            futures.discard(fut)
            fut.release()
            for nxt in submit(1):
                running.add(nxt)
            yield index_of.pop(fut.key), result
    finally:
        if futures:
            client.cancel(list(futures))
        if own:
            client.close()


def cluster_workers(cluster: Any) -> int:
    """Number of worker threads the cluster offers (for estimates)."""
    from distributed import Client

    own = not hasattr(cluster, "submit")
    client: Any = Client(cluster) if own else cluster
    try:
        return max(1, sum(client.nthreads().values()))
    finally:
        if own:
            client.close()

