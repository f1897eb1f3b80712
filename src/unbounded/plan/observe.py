"""``df.observe(name, *exprs)``: named aggregates computed over the rows passing a point.

``CollectMetrics`` is Spark's node of that name. Its rows pass through unchanged: it is
a ``Project`` of ``*``, so every engine rule and the stage planner treat it as one. What
it adds is the metrics: for a streaming query the runtime evaluates them over each
micro-batch (``runtime/observed.py``) and reports them in ``progress.observedMetrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from unbounded.plan.expressions import Expression, Star
from unbounded.plan.logical import LogicalPlan, Project

__all__ = ["CollectMetrics", "collect_metrics"]


@dataclass(frozen=True, eq=False)
class CollectMetrics(Project):
    """``exprs`` is ``(*)``; ``name`` and ``metrics`` are what ``observe`` was given."""

    name: str = ""
    metrics: tuple[Expression, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("observe() needs a non-empty name for its metrics.")
        if not self.metrics:
            raise ValueError("observe() needs at least one metric expression.")

    def describe(self) -> str:
        shown = ", ".join(m.display_name() for m in self.metrics)
        return f"CollectMetrics {self.name}, [{shown}]"


def collect_metrics(child: LogicalPlan, name: str,
                    metrics: tuple[Expression, ...]) -> CollectMetrics:
    return CollectMetrics(child, (Star(),), name=name, metrics=metrics)
