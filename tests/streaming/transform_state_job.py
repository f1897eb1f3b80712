"""A sessionization job (transformWithStateInPandas: value, list and map state, event-time
timers) over JSON event files, run as a child process by the crash tests.

Every batch emits a ``progress`` row per key it saw (what the state held after it) and a
``session`` row per session its timer closed, so the output shows the state after every
batch: a state store left half-written by a kill would change it.

Usage: python transform_state_job.py INPUT OUTPUT CHECKPOINT
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd

from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.sql.streaming_state import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)

GAP_MS = 60_000
OUTPUT = ("user string, kind string, start timestamp, end timestamp, n long, total long, "
          "amounts string")


def _ms(t: Any) -> int:
    return int(pd.Timestamp(t, tz="UTC").timestamp() * 1000)


class SessionTracker(StatefulProcessor):
    """A session per user (value state), its amounts (list state) and a count per amount
    (map state), closed by a timer one minute of event time after its last event."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.session = handle.getValueState("session", "start timestamp, end timestamp")
        self.amounts = handle.getListState("amounts", "a long")
        self.counts = handle.getMapState("counts", "a long", "n long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        pdf = pd.concat(list(rows))
        start, end = self.session.get() or (None, None)
        first, last = pdf.event_time.min().to_pydatetime(), pdf.event_time.max().to_pydatetime()
        start, end = min(start or first, first), max(end or last, last)
        self.session.update((start, end))
        self.amounts.appendList([(int(a),) for a in pdf.amount])
        for a in pdf.amount:
            n = (self.counts.getValue((int(a),)) or (0,))[0]
            self.counts.updateValue((int(a),), (n + 1,))
        for timer in self.handle.listTimers():
            self.handle.deleteTimer(timer)
        self.handle.registerTimer(_ms(end) + GAP_MS)
        yield self._row(key, "progress", start, end)

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[pd.DataFrame]:
        start, end = self.session.get()  # type: ignore[misc]
        row = self._row(key, "session", start, end)
        self.session.clear()
        self.amounts.clear()
        self.counts.clear()
        yield row

    def _row(self, key: Any, kind: str, start: Any, end: Any) -> pd.DataFrame:
        amounts = [a for (a,) in self.amounts.get()]
        counts = " ".join(f"{k}x{v}" for (k,), (v,) in sorted(self.counts.iterator()))
        return pd.DataFrame({"user": [key[0]], "kind": [kind], "start": [start], "end": [end],
                             "n": [len(amounts)], "total": [sum(amounts)],
                             "amounts": [counts]})


def main(input_dir: str, output_dir: str, checkpoint: str) -> None:
    spark = SparkSession.builder.appName("transform-state-job").config(
        "spark.sql.shuffle.partitions", "3").getOrCreate()
    events = (spark.readStream.schema("user STRING, amount LONG, ts STRING")
              .option("maxFilesPerTrigger", 1).json(input_dir)
              .withColumn("event_time", F.to_timestamp("ts")))
    sessions = (events.withWatermark("event_time", "30 seconds").groupBy("user")
                .transformWithStateInPandas(SessionTracker(), OUTPUT, "Append", "EventTime"))
    query = (sessions.writeStream.outputMode("append").format("parquet")
             .option("checkpointLocation", checkpoint).trigger(availableNow=True)
             .start(output_dir))
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:4])
