"""Run independent evaluation jobs on Dask: the local machine, or a cluster at an address.

``run_jobs(fn, shared, per_job, scheduler=...)`` calls ``fn(*shared, *args)`` for every ``args`` of
``per_job`` and returns the results in order. ``shared`` (the task's cells and every embedding) is
put into the graph once, or scattered once to a cluster's workers, never pickled per job.

Schedulers: ``synchronous`` (in this thread, for debugging), ``threads``, ``processes`` (a local
process pool), or the address of a running ``dask.distributed`` scheduler (``tcp://host:8786``):
point ``heldout evaluate --scheduler`` at a cluster that has heldout installed on its workers.

Within a job, finer independent work (kBET's labels, Leiden's resolutions x seeds) goes through
:func:`map_tasks`: more tasks on the same cluster when the job runs on a Dask worker, else worker
processes here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from heldout.errors import UsageError

LOCAL = ("synchronous", "threads", "processes")


def check_scheduler(scheduler: str) -> str:
    if scheduler in LOCAL or "://" in scheduler:
        return scheduler
    msg = f"--scheduler {scheduler!r} is neither a local scheduler nor a scheduler address."
    raise UsageError(msg, hint=f"Use one of {', '.join(LOCAL)}, or an address such as tcp://127.0.0.1:8786.")


def run_jobs(fn: Callable, shared: tuple, per_job: Sequence[tuple], *, scheduler: str,
             connect_timeout: str = "10s", on_done: Callable[[int], None] | None = None) -> list:
    """``fn(*shared, *args)`` per job on ``scheduler``, results in order; ``on_done(i)`` as job ``i`` finishes."""
    scheduler = check_scheduler(scheduler)
    if scheduler in LOCAL:
        import dask
        from dask.callbacks import Callback

        common = dask.delayed(shared, traverse=False)  # one graph key for the large shared inputs
        jobs = [dask.delayed(_call)(fn, common, *args) for args in per_job]
        index = {job.key: i for i, job in enumerate(jobs)}

        def finished(key: object, *_: object) -> None:
            if on_done and key in index:
                on_done(index[key])

        with Callback(posttask=finished):
            return list(dask.compute(*jobs, scheduler=scheduler))
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        msg = f"Could not reach the Dask scheduler at {scheduler}: {exc}"
        raise UsageError(msg, hint="Start one (`dask scheduler` and `dask worker ADDRESS`) or use --scheduler "
                                   "processes.") from None
    with client:
        common = client.scatter(shared, broadcast=True)
        futures = [client.submit(_call, fn, common, *args, pure=False) for args in per_job]
        index = {future.key: i for i, future in enumerate(futures)}
        for future in as_completed(futures):
            future.result()  # raise a job's error here, as soon as it happens
            if on_done:
                on_done(index[future.key])
        return client.gather(futures)


def _call(fn: Callable, shared: tuple, *args: object) -> object:
    return fn(*shared, *args)


def map_tasks(fn: Callable, shared: tuple, per_task: Sequence[tuple], *, parallel: bool = True,
              on_done: Callable[[], None] | None = None) -> list:
    """``fn(*shared, *args)`` for every ``args``, in order, as independent tasks.

    On a Dask worker (an entry scored on a cluster) they are tasks of that cluster, ``shared``
    scattered once; otherwise worker processes of this machine (joblib, which memory-maps large
    arrays rather than copying them), or this process when ``parallel`` is false.
    ``on_done`` is called as each task finishes (for a progress bar).
    """
    results = []
    for result in _task_results(fn, shared, per_task, parallel=parallel):
        results.append(result)
        if on_done:
            on_done()
    return results


def _task_results(fn: Callable, shared: tuple, per_task: Sequence[tuple], *, parallel: bool) -> Iterator:
    """The results of :func:`map_tasks`' tasks, in order, as they come."""
    if _cluster_of_this_worker() is not None:
        from distributed import worker_client

        with worker_client() as client:
            common = client.scatter(list(shared), broadcast=True)
            futures = [client.submit(_call, fn, common, *args, pure=False) for args in per_task]
            yield from (future.result() for future in futures)
    elif parallel:
        from joblib import Parallel, delayed

        yield from Parallel(n_jobs=-1, return_as="generator")(delayed(fn)(*shared, *args) for args in per_task)
    else:
        yield from (fn(*shared, *args) for args in per_task)


def _cluster_of_this_worker() -> object | None:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None
