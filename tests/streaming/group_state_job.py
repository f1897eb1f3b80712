"""A sessionization job (applyInPandasWithState with event-time timeouts) over JSON
event files, run as a child process by the crash tests.

Usage: python group_state_job.py INPUT OUTPUT CHECKPOINT [workers]

With ``workers`` every state partition's calls run in a worker process; then, when
``KILL_WORKER_ONCE`` names a file that does not exist yet, the first call in a worker
creates it and SIGKILLs that worker.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd

from unbounded.engine import state_workers
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.sql.streaming_state import GroupState, GroupStateTimeout

GAP_MS = 60_000


def sessionize(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
               state: GroupState) -> Iterator[pd.DataFrame]:
    """A session per user, closed once the watermark passes its last event plus 1 min."""
    _maybe_kill_this_worker()
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


def _maybe_kill_this_worker() -> None:
    marker = os.environ.get("KILL_WORKER_ONCE")
    if marker and os.getpid() != int(os.environ["JOB_DRIVER_PID"]) \
            and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def main(input_dir: str, output_dir: str, checkpoint: str, where: str = "") -> None:
    os.environ["JOB_DRIVER_PID"] = str(os.getpid())
    if where == "workers":
        state_workers.MIN_CALLS_PER_WORKER = 0
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
    main(*sys.argv[1:5])
