"""Kafka -> transform -> Kafka with the transactional sink, beside Quix Streams (issue 4).

Not written yet: the Kafka engineer owns it. The workload reports itself as a stub.
"""

from __future__ import annotations

from bench.harness import BenchContext, Workload, WorkloadResult

__all__ = ["WORKLOAD", "run"]


def run(ctx: BenchContext) -> WorkloadResult:
    print("kafka: not yet")
    return WorkloadResult("kafka", status="stub", error="not yet (issue 4)",
                          params={"rows": ctx.rows})


WORKLOAD = Workload("kafka", "Kafka -> transform -> Kafka (not yet)", 1_000_000, run)
