"""Settings unbounded reads, with Spark's names and defaults."""

from __future__ import annotations

import os

__all__ = ["DEFAULTS"]

DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": str(os.cpu_count() or 2),
    "spark.sql.streaming.minBatchesToRetain": "100",
    "spark.sql.streaming.numRecentProgressUpdates": "100",
    "spark.sql.streaming.multipleWatermarkPolicy": "min",
    "spark.sql.streaming.stateStore.minDeltasForSnapshot": "10",
    "spark.sql.streaming.fileSink.log.compactInterval": "10",
    "spark.sql.session.timeZone": "UTC",
}
