"""A streaming aggregation gives the same rows whichever merge the state store takes
(one full join for small frames, a left and an anti join for large ones), across
batches, NULL keys and a restart that rebuilds the state from the delta files."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from unbounded.sql import Row, SparkSession
from unbounded.sql import functions as F
from unbounded.state import memory
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def w(start: float, end: float) -> Row:
    return Row(start=at(start), end=at(end))


@pytest.fixture(params=["full join", "left and anti join", "near windows only"])
def merge_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param != "full join":
        monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)
    if request.param == "near windows only":  # the hashed merge probes the batch's windows
        monkeypatch.setattr(memory, "NEAR_MIN_ROWS", 0)
    return str(request.param)


def _rows(df: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def _start(spark: SparkSession, stream: MemoryStream, cp: str,
           batches: dict[int, list[tuple[Any, ...]]]) -> Any:
    counts = (stream.toDF().withWatermark("ts", "10 minutes")
              .groupBy(F.window("ts", "5 minutes"), "k")
              .agg(F.count("*").alias("n"), F.sum("v").alias("s"), F.max("v").alias("hi")))
    return (counts.writeStream.outputMode("update")
            .foreachBatch(lambda df, i: batches.__setitem__(i, _rows(df)))
            .option("checkpointLocation", cp).start())


def test_update_mode_rows_survive_a_restart_on_either_merge_path(
        spark: SparkSession, tmp_path: Any, merge_path: str) -> None:
    stream = MemoryStream("ts TIMESTAMP, k STRING, v LONG", spark)
    batches: dict[int, list[tuple[Any, ...]]] = {}
    cp = str(tmp_path / "cp")
    query = _start(spark, stream, cp, batches)
    stream.addData([(at(0), "a", 1), (at(1), None, 2), (at(6), "a", 3)])
    query.processAllAvailable(30)
    query.stop()
    query = _start(spark, stream, cp, batches)  # state comes back from the delta files
    try:
        stream.addData([(at(2), "a", 10), (at(3), None, 20), (at(7), "b", 5)])
        query.processAllAvailable(30)
        stream.addData([(at(30), "a", 1), (at(4), "a", 100)])  # 10:04 is late afterwards
        query.processAllAvailable(30)
        stream.addData([(at(4), "a", 1000), (at(31), "a", 2)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    emitted = [rows for _, rows in sorted(batches.items()) if rows]
    assert emitted == [
        sorted([(w(0, 5), "a", 1, 1, 1), (w(0, 5), None, 1, 2, 2), (w(5, 10), "a", 1, 3, 3)],
               key=repr),
        sorted([(w(0, 5), "a", 2, 11, 10), (w(0, 5), None, 2, 22, 20),
                (w(5, 10), "b", 1, 5, 5)], key=repr),
        sorted([(w(0, 5), "a", 3, 111, 100), (w(30, 35), "a", 1, 1, 1)], key=repr),
        [(w(30, 35), "a", 2, 3, 2)],
    ]
