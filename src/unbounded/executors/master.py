"""``spark.master`` as PySpark spells it, and the executor each value selects.

``local``, ``local[N]``, ``local[*]`` and ``local[N, F]`` run tasks on threads here;
``ray`` joins the Ray runtime this process is connected to, or the one started on this
machine, or starts one; ``ray://host:port`` joins a cluster through Ray Client. On Ray,
``spark.speculation*`` (Spark's settings) and ``spark.unbounded.ray.stateActors`` (ours,
default true: state partitions live in Ray actors) apply.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from unbounded.errors import AnalysisException
from unbounded.executors.base import Executor
from unbounded.executors.local import LocalExecutor

__all__ = ["Master", "create_executor", "parse_master"]

_LOCAL = re.compile(r"local(?:\[\s*(\*|\d+)\s*(?:,\s*(\d+)\s*)?\])?")
# Spark's spark.task.maxFailures defaults: 1 in local mode, 4 on a cluster.
_LOCAL_FAILURES, _CLUSTER_FAILURES = 1, 4
INSTALL_RAY = ("Ray is not installed: master('ray') needs it. Install the extra with "
               "`pip install 'unbounded[ray]'` (or `pip install ray`), or use master('local[*]').")


@dataclass(frozen=True)
class Master:
    """A parsed master URL: where tasks run, on how many threads, retried how often."""

    kind: str  # "local" or "ray"
    threads: int | None = None  # local only; None: one per core
    max_failures: int | None = None  # from local[N, F]; spark.task.maxFailures wins
    address: str | None = None  # ray only; None: this machine's runtime

    def task_max_failures(self, conf_value: str | None) -> int:
        """Attempts per task. As in Spark: in local mode F of ``local[N, F]``, else 1
        (``spark.task.maxFailures`` does not apply); on a cluster that setting, else 4."""
        if self.kind == "local":
            return self.max_failures or _LOCAL_FAILURES
        return max(1, int(conf_value)) if conf_value is not None else _CLUSTER_FAILURES


def parse_master(url: str) -> Master:
    """The master a URL names; fails on a URL Spark would not parse and on ``ray``
    without Ray installed, so a session fails when it is built, not at its first query.

    >>> parse_master("local[4]")
    Master(kind='local', threads=4, max_failures=None, address=None)
    >>> parse_master("local[*, 3]").task_max_failures(None)
    3
    """
    text = url.strip()
    local = _LOCAL.fullmatch(text)
    if local is not None:
        cores = local.group(1)
        threads = 1 if cores is None else None if cores == "*" else int(cores)
        failures = int(local.group(2)) if local.group(2) else None
        return Master("local", threads, failures)
    if text == "ray" or text.startswith("ray://"):
        if importlib.util.find_spec("ray") is None:
            raise ImportError(INSTALL_RAY)
        return Master("ray", address=None if text == "ray" else text)
    raise AnalysisException(
        f"[INVALID_MASTER_URL] Could not parse Master URL: {url!r}. Use local, local[N], "
        "local[*], ray or ray://host:port.", error_class="INVALID_MASTER_URL")


def create_executor(master: Master, conf: Callable[[str], str | None]) -> Executor:
    """The executor ``master`` selects; ``conf`` reads the session's settings."""
    threads = conf("unbounded.executor.threads")
    workers = int(threads) if threads else master.threads
    # Retries (local[N, F]) and Ray's speculation are imported only where they apply.
    if master.kind == "local":
        attempts = master.task_max_failures(None)
        local = LocalExecutor(workers)
        if attempts == 1:
            return local
        from unbounded.executors.retry import RetryingExecutor

        return RetryingExecutor(local, attempts)
    from unbounded.executors.ray import RayExecutor
    from unbounded.executors.speculation import SpeculationConf

    actors = (conf("spark.unbounded.ray.stateActors") or "true").strip().lower() == "true"
    return RayExecutor(master.address, master.task_max_failures(conf("spark.task.maxFailures")),
                       workers or os.cpu_count() or 2, SpeculationConf.from_conf(conf), actors)
