"""A sessionization job (applyInPandasWithState with event-time timeouts) over JSON
event files, run as a child process by the crash tests.

Usage: python group_state_job.py INPUT OUTPUT CHECKPOINT
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd

from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.sql.streaming_state import GroupState, GroupStateTimeout

GAP_MS = 60_000


def sessionize(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
               state: GroupState) -> Iterator[pd.DataFrame]:
    """A session per user, closed once the watermark passes its last event plus 1 min."""
    if state.hasTimedOut:
        start, end, n, total = state.get
        state.remove()
        yield pd.DataFrame({"user": [key[0]], "start": [start], "end": [end], "n": [n],
                            "total": [total]})
        return
    start, end, n, total = state.get if state.exists else (None, None, 0, 0)
    for pdf in frames:
        first, last = pdf.event_time.min().to_pydatetime(), pdf.event_time.max().to_pydatetime()
        start = first if start is None else min(start, first)
        end = last if end is None else max(end, last)
        n, total = n + len(pdf), total + int(pdf.amount.sum())
    state.update((start, end, n, total))
    state.setTimeoutTimestamp(int(pd.Timestamp(end, tz="UTC").timestamp() * 1000) + GAP_MS)


def main(input_dir: str, output_dir: str, checkpoint: str) -> None:
    spark = SparkSession.builder.appName("group-state-job").config(
        "spark.sql.shuffle.partitions", "3").getOrCreate()
    events = (spark.readStream.schema("user STRING, amount LONG, ts STRING")
              .option("maxFilesPerTrigger", 1).json(input_dir)
              .withColumn("event_time", F.to_timestamp("ts")))
    sessions = (events.withWatermark("event_time", "30 seconds").groupBy("user")
                .applyInPandasWithState(
                    sessionize, "user string, start timestamp, end timestamp, n long, "
                    "total long", "start timestamp, end timestamp, n long, total long",
                    "append", GroupStateTimeout.EventTimeTimeout))
    query = (sessions.writeStream.outputMode("append").format("parquet")
             .option("checkpointLocation", checkpoint).trigger(availableNow=True)
             .start(output_dir))
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:4])
