"""Speculative execution as Spark decides it: which running task gets a second attempt.

Spark (``TaskSetManager.checkSpeculatableTasks``): once at least
``max(floor(quantile * tasks), 1)`` tasks of a set have succeeded, a task still running
with one copy for longer than ``max(multiplier * median, minTaskRuntime)`` (the median of
the successful tasks' durations) gets one more copy; a set of one task is never
speculated. The first copy to succeed wins and the others are killed. The executor that
runs copies (the Ray executor) asks ``speculatable`` every ``interval``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from unbounded.plan.intervals import parse_interval_us

__all__ = ["SpeculationConf", "speculatable"]


@dataclass(frozen=True)
class SpeculationConf:
    """``spark.speculation*`` settings, with Spark 4's defaults; times in seconds."""

    enabled: bool = False
    interval_s: float = 0.1
    multiplier: float = 3.0
    quantile: float = 0.9
    min_runtime_s: float = 0.1

    @classmethod
    def from_conf(cls, conf: Callable[[str], str | None]) -> SpeculationConf:
        """The settings a session holds (unset keys keep Spark's defaults).

        >>> SpeculationConf.from_conf({"spark.speculation": "true",
        ...     "spark.speculation.minTaskRuntime": "2s"}.get).min_runtime_s
        2.0
        """
        default = cls()
        enabled = (conf("spark.speculation") or "false").strip().lower() == "true"
        return cls(enabled,
                   _seconds(conf("spark.speculation.interval"), default.interval_s),
                   float(conf("spark.speculation.multiplier") or default.multiplier),
                   float(conf("spark.speculation.quantile") or default.quantile),
                   _seconds(conf("spark.speculation.minTaskRuntime"), default.min_runtime_s))


def _seconds(text: str | None, default: float) -> float:
    """A Spark time setting; a bare number is milliseconds, as in Spark's timeConf."""
    if text is None:
        return default
    body = text.strip()
    if body.replace(".", "", 1).isdigit():
        return float(body) / 1000
    return parse_interval_us(body) / 1_000_000


def speculatable(conf: SpeculationConf, tasks: int, succeeded: Sequence[float],
                 running: Mapping[int, float]) -> list[int]:
    """The tasks (indexes into ``running``: its running time in seconds, for tasks with
    one copy) that should get a second copy now, given the successful tasks' durations.

    >>> speculatable(SpeculationConf(True), 4, [1.0, 1.0, 1.2, 1.0], {})
    []
    >>> speculatable(SpeculationConf(True), 2, [1.0], {1: 3.5, 0: 2.0})
    [1]
    """
    if not conf.enabled or tasks <= 1 or not succeeded:
        return []
    if len(succeeded) < max(math.floor(conf.quantile * tasks), 1):
        return []
    import statistics  # lazy: it pulls in fractions and decimal (~5 ms at start-up)

    threshold = max(conf.multiplier * statistics.median(succeeded), conf.min_runtime_s)
    return sorted(i for i, elapsed in running.items() if elapsed > threshold)
