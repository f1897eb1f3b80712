"""What a started query is: its plan, its sink, its trigger and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from unbounded.plan.logical import LogicalPlan
from unbounded.plan.observe import CollectMetrics
from unbounded.runtime.triggers import ProcessingTime, Trigger
from unbounded.sinks.base import Sink, SinkContext

__all__ = ["QuerySpec"]


@dataclass(frozen=True)
class QuerySpec:
    """Everything the runner needs; built by ``DataStreamWriter.start``.

    ``checkpoint`` is None only for sinks that may run on a temporary checkpoint.
    """

    plan: LogicalPlan
    sink_format: str
    sink_factory: Callable[[SinkContext], Sink]
    sink_options: dict[str, str]
    output_mode: str
    checkpoint: str
    temporary_checkpoint: bool = False
    trigger: Trigger = field(default_factory=ProcessingTime)
    query_name: str | None = None
    partition_by: tuple[str, ...] = ()
    conf: dict[str, str] = field(default_factory=dict)
    # df.observe(...) nodes taken off the top of ``plan`` (runtime/observed.py)
    observed: tuple[CollectMetrics, ...] = ()

    def conf_int(self, key: str, default: int) -> int:
        return int(self.conf.get(key, default))
