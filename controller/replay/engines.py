"""Where calibration trials run: in this process, on local worker processes, or on a Dask cluster.

Every engine takes a plain function and its arguments and hands back futures; the study (and its
SQLite storage) stays in the calling process, which asks Optuna for parameters and tells it the
results, so the workers never touch the storage.  A Dask cluster gets the history once
(``scatter``); each trial sends only its parameters.  Dask is imported only by the Dask engine.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from controller.replay.walkforward import CalibrationError


class InProcess:
    """``--workers 1``: each trial runs when submitted, here."""

    name, workers = "local", 1

    def put(self, value: Any) -> Any:
        return value

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # the caller reads it from the future, as from any other engine
            future.set_exception(exc)
        return future

    def first_done(self, futures: Iterable[Any]) -> set[Any]:
        return {f for f in futures if f.done()}

    def close(self) -> None:
        pass


class Processes(InProcess):
    """``--workers W``: W local processes (spawned, so no thread or lock of this one is inherited)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.pool.submit(fn, *args)

    def first_done(self, futures: Iterable[Any]) -> set[Any]:
        return set(wait(list(futures), return_when=FIRST_COMPLETED).done)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class DaskCluster:
    """``--dask-scheduler tcp://HOST:PORT``: an existing cluster; a trial in flight per thread."""

    name = "dask"

    def __init__(self, address: str, *, timeout_s: float = 15.0) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise CalibrationError("--dask-scheduler needs Dask: pip install -e '.[distributed]'") from None
        try:
            self.client = Client(address, timeout=f"{timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise CalibrationError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        threads = sum(self.client.nthreads().values())
        if not threads:
            self.client.close()
            raise CalibrationError(f"the Dask scheduler at {address} has no workers")
        self.workers = threads

    def put(self, value: Any) -> Any:
        return self.client.scatter(value, broadcast=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def first_done(self, futures: Iterable[Any]) -> set[Any]:
        pending = list(futures)
        while True:  # polled: Dask's own wait() looks for a default client, and this one is private
            done = {f for f in pending if f.done()}
            if done or not pending:
                return done
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()


def engine(*, workers: int = 1, dask_scheduler: str | None = None) -> InProcess | DaskCluster:
    if dask_scheduler is not None:
        return DaskCluster(dask_scheduler)
    if workers < 1:
        raise CalibrationError(f"--workers must be at least 1, got {workers}")
    return InProcess() if workers == 1 else Processes(workers)
