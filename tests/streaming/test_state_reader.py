"""Spark 4's state data sources over our checkpoints: ``format("statestore")`` (options
batchId, operatorId, storeName, joinSide) and ``format("state-metadata")``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from unbounded.checkpoint.checksum import accept_unverified
from unbounded.errors import AnalysisException, CheckpointCorruptError
from unbounded.sql import DataFrame, SparkSession
from unbounded.sql import functions as F


def _write(folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


def _run(df: DataFrame, checkpoint: Path, mode: str = "append") -> None:
    q = (df.writeStream.format("memory").queryName(f"q{abs(hash(str(checkpoint)))}")
         .outputMode(mode).option("checkpointLocation", str(checkpoint)).start())
    q.processAllAvailable()
    q.stop()


def _rows(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.key), tuple(r.value), r.partition_id) for r in df.collect())


@pytest.fixture
def two_partitions(spark: SparkSession) -> SparkSession:
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    return spark


def _aggregation(spark: SparkSession, tmp_path: Path) -> Path:
    """Batch 0 counts a1 b2 a3, batch 1 adds a5 c7."""
    source, cp = tmp_path / "in", tmp_path / "cp"
    source.mkdir(parents=True)
    stream = spark.readStream.schema("k string, v long").json(str(source))
    agg = stream.groupBy("k").agg(F.count("*").alias("n"), F.sum("v").alias("s"),
                                  F.avg("v").alias("m"))
    _write(source, "0.json", ['{"k":"a","v":1}', '{"k":"b","v":2}', '{"k":"a","v":3}'])
    _run(agg, cp, "complete")
    _write(source, "1.json", ['{"k":"a","v":5}', '{"k":"c","v":7}'])
    _run(agg, cp, "complete")
    return cp


def test_aggregation_state_at_the_last_and_at_a_given_batch(two_partitions, tmp_path):
    cp = str(_aggregation(two_partitions, tmp_path))
    read = two_partitions.read.format("statestore")
    last = read.load(cp)
    assert last.schema.simpleString() == (
        "struct<key:struct<k:string>,value:struct<n#count0:bigint,s#sum0:bigint,"
        "s#sum1:bigint,m#avg0:double,m#avg1:bigint>,partition_id:int>")
    assert _rows(last) == [(("a",), (3, 9, 3, 9.0, 3), 1), (("b",), (1, 2, 1, 2.0, 1), 1),
                           (("c",), (1, 7, 1, 7.0, 1), 0)]
    first = two_partitions.read.format("statestore").option("batchId", 0).load(cp)
    assert _rows(first) == [(("a",), (2, 4, 2, 4.0, 2), 1), (("b",), (1, 2, 1, 2.0, 1), 1)]


def test_dedup_state_holds_each_key_once(two_partitions, tmp_path):
    source, cp = tmp_path / "in", tmp_path / "cp"
    _write(source, "0.json", ['{"k":"a","v":1}', '{"k":"b","v":2}', '{"k":"a","v":3}'])
    stream = two_partitions.readStream.schema("k string, v long").json(str(source))
    _run(stream.dropDuplicates(["k"]), cp)
    df = two_partitions.read.format("statestore").load(str(cp))
    assert df.schema.simpleString() == (
        "struct<key:struct<k:string>,value:struct<__expires_at:timestamp>,partition_id:int>")
    assert _rows(df) == [(("a",), (None,), 1), (("b",), (None,), 1)]


def _join(spark: SparkSession, tmp_path: Path) -> str:
    left, right, cp = tmp_path / "l", tmp_path / "r", tmp_path / "cp"
    _write(left, "0.json", ['{"id":1,"lv":"x"}', '{"id":2,"lv":"y"}'])
    _write(right, "0.json", ['{"id":1,"rv":"p"}', '{"id":3,"rv":"q"}'])
    lhs = spark.readStream.schema("id long, lv string").json(str(left))
    rhs = spark.readStream.schema("id long, rv string").json(str(right))
    _run(lhs.join(rhs, "id"), cp)
    return str(cp)


def test_join_sides_return_each_sides_rows(two_partitions, tmp_path):
    cp = _join(two_partitions, tmp_path)
    reader = two_partitions.read.format("statestore")
    left = reader.option("joinSide", "left").load(cp)
    assert left.schema.simpleString() == (
        "struct<key:struct<field0:bigint>,value:struct<id:bigint,lv:string>,"
        "partition_id:int>")
    assert _rows(left) == [((1,), (1, "x"), 0), ((2,), (2, "y"), 0)]
    right = two_partitions.read.format("statestore").option("joinSide", "right").load(cp)
    assert _rows(right) == [((1,), (1, "p"), 0), ((3,), (3, "q"), 1)]
    raw = two_partitions.read.format("statestore").option("storeName", "right").load(cp)
    assert raw.schema["key"].dataType.simpleString() == "struct<__join_row:bigint>"
    assert [f.name for f in raw.schema["value"].dataType.fields] == ["id", "rv",
                                                                     "__join_matched"]


def test_a_join_side_s_key_is_each_join_key_coerced_to_the_common_type(
        two_partitions, tmp_path):
    left, right, cp = tmp_path / "l", tmp_path / "r", tmp_path / "cp"
    _write(left, "0.json", ['{"id":1,"k":"a","v":"x"}', '{"id":2,"k":"b","v":"y"}'])
    _write(right, "0.json", ['{"id":1,"k":"a","v":"p"}', '{"id":2,"k":"c","v":"q"}'])
    lhs = two_partitions.readStream.schema("id int, k string, v string").json(str(left))
    rhs = two_partitions.readStream.schema("id long, k string, v string").json(str(right))
    _run(lhs.join(rhs, (lhs.id == rhs.id) & (F.upper(lhs.k) == F.upper(rhs.k))), cp)
    side = two_partitions.read.format("statestore").option("joinSide", "right").load(str(cp))
    assert side.schema.simpleString() == (
        "struct<key:struct<field0:bigint,field1:string>,"
        "value:struct<id:bigint,k:string,v:string>,partition_id:int>")
    assert sorted(r[0] for r in _rows(side)) == [(1, "A"), (2, "C")]
    lside = two_partitions.read.format("statestore").option("joinSide", "left").load(str(cp))
    assert sorted(r[0] for r in _rows(lside)) == [(1, "A"), (2, "B")]


def test_a_join_checkpoint_without_recorded_keys_reads_sides_by_row(two_partitions, tmp_path):
    cp = _join(two_partitions, tmp_path)
    os.remove(os.path.join(cp, "state", "0", "_metadata", "join-keys"))
    left = two_partitions.read.format("statestore").option("joinSide", "left").load(cp)
    assert _rows(left) == [((0,), (1, "x"), 0), ((1,), (2, "y"), 0)]


def test_a_damaged_join_keys_record_is_named(two_partitions, tmp_path):
    cp = _join(two_partitions, tmp_path)
    record = Path(cp, "state", "0", "_metadata", "join-keys")
    record.write_text('{"version": 7, "sides": {}}')
    accept_unverified(str(record))  # a well-formed record of another version, not damage
    with pytest.raises(CheckpointCorruptError, match="join-keys has join keys format version 7"):
        two_partitions.read.format("statestore").option("joinSide", "left").load(cp)


def _metadata(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in df.collect())


def test_state_metadata_names_operators_stores_and_batches(two_partitions, tmp_path):
    agg = str(_aggregation(two_partitions, tmp_path / "agg"))
    join = _join(two_partitions, tmp_path / "join")
    meta = two_partitions.read.format("state-metadata").load(agg)
    assert meta.schema.simpleString() == (
        "struct<operatorId:bigint,operatorName:string,stateStoreName:string,"
        "numPartitions:int,minBatchId:bigint,maxBatchId:bigint,operatorProperties:string>")
    assert _metadata(meta) == [(0, "stateStoreSave", "default", 2, 0, 1, None)]
    assert _metadata(two_partitions.read.format("state-metadata").load(join)) == [
        (0, "symmetricHashJoin", "left", 2, 0, 0, None),
        (0, "symmetricHashJoin", "right", 2, 0, 0, None)]


def test_min_batch_id_is_the_oldest_batch_still_rebuildable(two_partitions, tmp_path):
    two_partitions.conf.set("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
    cp = _aggregation(two_partitions, tmp_path)
    for partition in ("0", "1"):  # as maintenance would: version 2 has a snapshot
        assert (cp / "state" / "0" / partition / "2.snapshot").exists()
        (cp / "state" / "0" / partition / "1.delta").unlink(missing_ok=True)
    meta = two_partitions.read.format("state-metadata").load(str(cp))
    assert _metadata(meta) == [(0, "stateStoreSave", "default", 2, 1, 1, None)]
    from_snapshot = two_partitions.read.format("statestore").load(str(cp))
    assert [r.key.k for r in from_snapshot.orderBy("key.k").collect()] == ["a", "b", "c"]


@pytest.mark.parametrize(("options", "message"), [
    ({"joinSide": "left"}, "has no store 'left'"),
    ({"batchId": "5"}, "batchId 5 is not committed"),
    ({"batchId": "-1"}, "batchId must be a non-negative integer"),
    ({"joinSide": "left", "storeName": "left"}, "cannot be specified together"),
    ({"joinSide": "both"}, "joinSide must be left, right or none"),
    ({"operatorId": "3"}, "no state for operator 3"),
])
def test_invalid_options_are_refused(two_partitions, tmp_path, options, message):
    cp = str(_aggregation(two_partitions, tmp_path))
    with pytest.raises(AnalysisException, match=message):
        two_partitions.read.format("statestore").options(**options).load(cp)


def test_a_folder_without_commits_has_no_state(spark, tmp_path):
    with pytest.raises(AnalysisException, match="has no committed batch"):
        spark.read.format("state-metadata").load(str(tmp_path))
