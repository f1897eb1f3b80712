"""The Ray executor: partition tasks run as Ray tasks on the cluster's workers.

Only ``ShippableTask``s leave the driver: each item becomes one Ray task, spread over the
nodes, whose result (Arrow tables inside) comes back through Ray's object store. Ray
re-runs an attempt that raised or whose worker process or node died, up to
``spark.task.maxFailures`` attempts in all, with the same item (the same input
partition), so a retried task reads the same rows. Everything else (a stateful
operator's fold over its state stores, a sink's writes) runs on a thread pool in the
driver, where those objects live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import ray
from ray.exceptions import RayTaskError

from unbounded.executors.base import PendingResults, ShippableTask
from unbounded.executors.local import LocalExecutor

__all__ = ["RayExecutor"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


def _attempt(task: ShippableTask[Any, Any], item: Any) -> Any:
    """One attempt of a task, on a Ray worker."""
    return task(item)


class _RayResults(Generic[R]):
    """Ray tasks in flight; ``result`` fails with the last attempt's own error."""

    def __init__(self, refs: list[Any], max_failures: int) -> None:
        self._refs = refs
        self._max_failures = max_failures

    def result(self) -> list[R]:
        try:
            values: list[R] = ray.get(self._refs)
        except RayTaskError as err:
            raise _task_error(err, self._max_failures) from err
        except ray.exceptions.RayError as err:
            err.add_note(_failed_note(self._max_failures))
            raise
        return values

    def cancel(self) -> None:
        for ref in self._refs:
            ray.cancel(ref)


def _failed_note(max_failures: int) -> str:
    return (f"The partition task failed {max_failures} time(s) "
            f"(spark.task.maxFailures={max_failures}).")


def _task_error(err: RayTaskError, max_failures: int) -> BaseException:
    """The task's own exception (a UDF's PythonException, a source's error), not Ray's
    wrapper, so the query fails as it would locally."""
    cause = err.cause if isinstance(err.cause, BaseException) else err
    cause.add_note(_failed_note(max_failures))
    return cause


class RayExecutor:
    """Ships ``ShippableTask``s to Ray; runs other callables on driver threads.

    Joins the Ray runtime this process is already connected to; otherwise connects to
    ``address`` (``ray://host:port``), or with ``None`` to the runtime started on this
    machine (``ray start``) or a new one, which ``shutdown`` then stops.
    """

    def __init__(self, address: str | None, max_failures: int, driver_threads: int) -> None:
        self.max_failures = max_failures
        self._owns_runtime = _connect(address)
        self._remote = ray.remote(_attempt).options(
            num_cpus=1, max_retries=max_failures - 1, retry_exceptions=True,
            scheduling_strategy="SPREAD")
        self._driver = LocalExecutor(driver_threads)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not isinstance(fn, ShippableTask):
            return self._driver.map(fn, items)
        return self.map_async(fn, items).result()

    def map_async(self, fn: Callable[[T], R], items: Sequence[T]) -> PendingResults[R]:
        """Ray queues the tasks; the driver's stateful ``map`` calls never wait for
        them, as those run on the driver's own threads."""
        if not isinstance(fn, ShippableTask):
            return self._driver.map_async(fn, items)
        return _RayResults([self._remote.remote(fn, item) for item in items],
                           self.max_failures)

    def shutdown(self) -> None:
        self._driver.shutdown()
        if self._owns_runtime and ray.is_initialized():
            ray.shutdown()


def _connect(address: str | None) -> bool:
    """Connect unless connected already; True when this call started the connection."""
    if ray.is_initialized():
        return False
    log.info("connecting to Ray at %s", address or "this machine")
    if address is None:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
    return True
