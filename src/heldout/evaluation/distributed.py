"""Run independent evaluation jobs on Dask: the local machine, or a cluster at an address.

``run_jobs(fn, shared, per_job, scheduler=...)`` calls ``fn(*shared, *args)`` for every ``args`` of
``per_job`` and returns the results in order. ``shared`` (the task's cells and every embedding) is
put into the graph once, or scattered once to a cluster's workers, never pickled per job.

Schedulers: ``synchronous`` (in this thread, for debugging), ``threads``, ``processes`` (a local
process pool), or the address of a running ``dask.distributed`` scheduler (``tcp://host:8786``):
point ``heldout evaluate --scheduler`` at a cluster that has heldout installed on its workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from heldout.errors import UsageError

LOCAL = ("synchronous", "threads", "processes")


def check_scheduler(scheduler: str) -> str:
    if scheduler in LOCAL or "://" in scheduler:
        return scheduler
    msg = f"--scheduler {scheduler!r} is neither a local scheduler nor a scheduler address."
    raise UsageError(msg, hint=f"Use one of {', '.join(LOCAL)}, or an address such as tcp://127.0.0.1:8786.")


def run_jobs(fn: Callable, shared: tuple, per_job: Sequence[tuple], *, scheduler: str,
             connect_timeout: str = "10s") -> list:
    scheduler = check_scheduler(scheduler)
    if scheduler in LOCAL:
        import dask

        common = dask.delayed(shared, traverse=False)  # one graph key for the large shared inputs
        jobs = [dask.delayed(_call)(fn, common, *args) for args in per_job]
        return list(dask.compute(*jobs, scheduler=scheduler))
    from distributed import Client

    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        msg = f"Could not reach the Dask scheduler at {scheduler}: {exc}"
        raise UsageError(msg, hint="Start one (`dask scheduler` and `dask worker ADDRESS`) or use --scheduler "
                                   "processes.") from None
    with client:
        common = client.scatter(shared, broadcast=True)
        futures = [client.submit(_call, fn, common, *args, pure=False) for args in per_job]
        return client.gather(futures)


def _call(fn: Callable, shared: tuple, *args: object) -> object:
    return fn(*shared, *args)
