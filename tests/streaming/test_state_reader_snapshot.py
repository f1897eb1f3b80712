"""``format("statestore")`` with ``snapshotStartBatchId`` and ``snapshotPartitionId``: one
partition's state rebuilt from the snapshot a given batch left, then its deltas, as
Spark 4 reads it; with Spark's option checks and errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from unbounded.errors import AnalysisException, SparkRuntimeException
from unbounded.sql import DataFrame, SparkSession
from unbounded.testing import MemoryStream


@pytest.fixture
def counts(spark: SparkSession, tmp_path: Path) -> str:
    """Counts per key over three batches, a snapshot every second state version: version
    2 (after batch 1) has one, versions 1 and 3 only deltas."""
    spark.conf.set("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
    stream = MemoryStream("k STRING", spark)
    q = (stream.toDF().groupBy("k").count().writeStream.format("noop")
         .outputMode("complete").option("checkpointLocation", str(tmp_path)).start())
    for rows in (["a", "c"], ["a", "b", "c", "d"], ["c", "g"]):
        stream.addData([(k,) for k in rows])
        q.processAllAvailable(30)
    q.stop()
    return str(tmp_path)


def _read(spark: SparkSession, cp: str, **options: Any) -> DataFrame:
    return spark.read.format("statestore").options(**options).load(cp)


def _rows(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.key), tuple(r.value), r.partition_id) for r in df.collect())


def test_one_partition_is_rebuilt_from_a_snapshot_and_its_deltas(spark, counts):
    assert sorted(os.listdir(Path(counts, "state", "0", "0"))) == [
        "1.delta", "2.delta", "2.snapshot", "3.delta"]
    every = _rows(_read(spark, counts))
    assert every == [(("a",), (2,), 1), (("b",), (1,), 1), (("c",), (3,), 0),
                     (("d",), (1,), 0), (("g",), (1,), 0)]
    for partition in (0, 1):
        got = _rows(_read(spark, counts, snapshotStartBatchId=1, snapshotPartitionId=partition))
        assert got == [r for r in every if r[2] == partition]
    at_one = _read(spark, counts, snapshotStartBatchId=1, snapshotPartitionId=0, batchId=1)
    assert _rows(at_one) == [(("c",), (2,), 0), (("d",), (1,), 0)]


def test_a_batch_without_a_snapshot_is_refused(spark, counts):
    with pytest.raises(SparkRuntimeException) as info:
        _read(spark, counts, snapshotStartBatchId=0, snapshotPartitionId=0)
    assert info.value.error_class == "CANNOT_LOAD_STATE_STORE.CANNOT_READ_MISSING_SNAPSHOT_FILE"
    assert str(Path(counts, "state", "0", "0", "1.snapshot")) in str(info.value)


@pytest.mark.parametrize(("options", "error_class", "message"), [
    ({"snapshotStartBatchId": "1"}, "STDS_REQUIRED_OPTION_UNSPECIFIED",
     "[STDS_REQUIRED_OPTION_UNSPECIFIED] 'snapshotPartitionId' must be specified."),
    ({"snapshotPartitionId": "0"}, "STDS_REQUIRED_OPTION_UNSPECIFIED",
     "'snapshotStartBatchId' must be specified."),
    ({"snapshotStartBatchId": "2", "snapshotPartitionId": "0", "batchId": "1"},
     "STDS_INVALID_OPTION_VALUE.WITH_MESSAGE", "Invalid value for source option "
     "'snapshotStartBatchId': value should be less than or equal to 1"),
    ({"snapshotStartBatchId": "1", "snapshotPartitionId": "5"},
     "CANNOT_LOAD_STATE_STORE.SNAPSHOT_PARTITION_ID_NOT_FOUND",
     "Partition id 5 not found for operator 0"),
])
def test_spark_checks_of_the_snapshot_options(spark, counts, options, error_class, message):
    with pytest.raises(SparkRuntimeException) as info:
        _read(spark, counts, **options)
    assert info.value.error_class == error_class
    assert message in str(info.value)


def test_a_negative_snapshot_option_is_refused(spark, counts):
    with pytest.raises(AnalysisException, match="snapshotPartitionId must be a non-negative"):
        _read(spark, counts, snapshotStartBatchId=1, snapshotPartitionId=-1)


def test_a_transform_with_state_variable_reads_from_a_snapshot(spark, tmp_path):
    import pandas as pd

    from unbounded.sql.streaming_state import StatefulProcessor

    class Seen(StatefulProcessor):
        def init(self, handle: Any) -> None:
            self.seen = handle.getListState("seen", "v long")

        def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
            for pdf in rows:
                self.seen.appendList([(int(v),) for v in pdf["v"]])
            yield pd.DataFrame({"k": [key[0]]})

    spark.conf.set("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
    stream = MemoryStream("k STRING, v LONG", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(Seen(), "k string",
                                                               "Update", "None")
    q = df.writeStream.format("noop").option("checkpointLocation", str(tmp_path)).start()
    for rows in ([("a", 1), ("c", 2)], [("c", 3)], [("c", 4), ("a", 5)]):
        stream.addData(rows)
        q.processAllAvailable(30)
    q.stop()
    got = _read(spark, str(tmp_path), stateVarName="seen", flattenCollectionTypes=False,
                snapshotStartBatchId=1, snapshotPartitionId=0).collect()
    assert [(r.key.k, [e.v for e in r.list_value], r.partition_id) for r in got] == [
        ("c", [2, 3, 4], 0)]
