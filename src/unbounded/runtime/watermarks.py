"""Event-time watermarks: per ``withWatermark`` node, combined into one global value.

The watermark used by batch N is computed from the event times seen through batch N-1
(max event time minus the delay), never moves backwards, and is logged in ``offsets/N``
so a re-run uses the same value.
"""

from __future__ import annotations

from unbounded.engine.context import EventTimeStats
from unbounded.plan.logical import LogicalPlan, WithWatermark, walk_plan

__all__ = ["WatermarkTracker"]


class WatermarkTracker:
    """Tracks each watermark node by its position in the plan (stable across runs)."""

    def __init__(self, plan: LogicalPlan, policy: str = "min") -> None:
        self.nodes = [n for n in walk_plan(plan) if isinstance(n, WithWatermark)]
        self.policy = policy.lower()
        self.per_node_ms: dict[str, int] = {}
        self.current_ms = 0

    @property
    def enabled(self) -> bool:
        return bool(self.nodes)

    def restore(self, global_ms: int, per_node_ms: dict[str, int]) -> None:
        self.current_ms = global_ms
        self.per_node_ms = dict(per_node_ms)

    def observe(self, stats: dict[str, EventTimeStats]) -> None:
        """Fold one batch's event times in; the new value applies from the next batch."""
        for ordinal, node in enumerate(self.nodes):
            seen = stats.get(node.node_id)
            if seen is None or seen.max_us is None:
                continue
            candidate = seen.max_us // 1000 - node.delay_ms
            key = str(ordinal)
            self.per_node_ms[key] = max(self.per_node_ms.get(key, candidate), candidate)
        if self.per_node_ms:
            values = self.per_node_ms.values()
            combined = max(values) if self.policy == "max" else min(values)
            self.current_ms = max(self.current_ms, combined)
