"""Partition discovery in the streaming file source: ``col=value`` folders become columns
after the data columns, typed when the stream is defined, as PySpark 4.3 does (each
expected schema and row below is what PySpark 4.3 gave for the same folders)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.errors import AnalysisException, SparkRuntimeException, StreamingQueryException
from unbounded.sources.base import SourceContext
from unbounded.sources.files import FileInputPartition, FileSource
from unbounded.sql import SparkSession
from unbounded.sql.dataframe import DataFrame
from unbounded.sql.types import StructType

Batches = list[tuple[int, list[tuple[Any, ...]]]]


def put(root: Path, folder: str, *values: str, fmt: str = "parquet") -> None:
    """One more file of ``values`` (column ``v``) under ``root/folder``."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    name = target / f"part-{len(os.listdir(target))}.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"v": list(values)}), str(name))
    else:
        name.write_text("".join(f'{{"v": "{v}"}}\n' for v in values))


class Stream:
    """A foreachBatch query over a folder, restartable on the same checkpoint."""

    def __init__(self, spark: SparkSession, root: Path, schema: str, fmt: str = "parquet",
                 **options: str) -> None:
        self.spark, self.root, self.schema, self.fmt = spark, root, schema, fmt
        self.options = options
        self.checkpoint = str(root.parent / f"cp-{root.name}")
        self.batches: Batches = []

    def frame(self) -> DataFrame:
        reader = self.spark.readStream.format(self.fmt).schema(self.schema)
        return reader.options(**self.options).load(str(self.root))

    def start(self) -> Any:
        def collect(df: DataFrame, batch_id: int) -> None:
            self.batches.append((batch_id, sorted((tuple(r) for r in df.collect()), key=repr)))

        return (self.frame().writeStream.foreachBatch(collect)
                .option("checkpointLocation", self.checkpoint).start())

    def run_available(self) -> Batches:
        """Run once over what is there now (a restart when run before); new batches."""
        seen = len(self.batches)
        query = (self.frame().writeStream
                 .foreachBatch(lambda df, i: self.batches.append(
                     (i, sorted((tuple(r) for r in df.collect()), key=repr))))
                 .option("checkpointLocation", self.checkpoint)
                 .trigger(availableNow=True).start())
        query.awaitTermination(60)
        if query.exception() is not None:
            raise query.exception()
        return self.batches[seen:]


@pytest.fixture
def dated(tmp_path: Path) -> Path:
    root = tmp_path / "dated"
    put(root, "date=2024-01-01", "x")
    put(root, "date=2024-01-02", "y")
    return root


def test_partition_columns_follow_the_data_columns_with_inferred_types(spark, dated) -> None:
    stream = Stream(spark, dated, "v string")
    assert stream.frame().schema.simpleString() == "struct<v:string,date:date>"
    assert stream.run_available() == [
        (0, [("x", dt.date(2024, 1, 1)), ("y", dt.date(2024, 1, 2))])]


@pytest.mark.parametrize("schema", ["v string, date string", "date string, v string"])
def test_a_user_schema_types_the_partition_column_and_keeps_it_last(spark, dated,
                                                                    schema) -> None:
    stream = Stream(spark, dated, schema)
    assert stream.frame().schema.simpleString() == "struct<v:string,date:string>"
    assert stream.run_available() == [(0, [("x", "2024-01-01"), ("y", "2024-01-02")])]


def test_type_inference_off_keeps_strings(spark, dated) -> None:
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    stream = Stream(spark, dated, "v string")
    assert stream.frame().schema.simpleString() == "struct<v:string,date:string>"
    assert stream.run_available() == [(0, [("x", "2024-01-01"), ("y", "2024-01-02")])]


@pytest.mark.timeout(90)
def test_new_partitions_between_batches_take_the_fixed_types(spark, tmp_path) -> None:
    root = tmp_path / "nested"
    put(root, "k=1/s=a", "m", fmt="json")
    stream = Stream(spark, root, "v string", fmt="json")
    query = stream.start()
    try:
        query.processAllAvailable()
        put(root, "k=2/s=b", "n", fmt="json")
        put(root, "k=__HIVE_DEFAULT_PARTITION__/s=c%3Dd", "o", fmt="json")
        query.processAllAvailable()
    finally:
        query.stop()
    # the two new files arrive while the query runs: one batch or two may read them
    assert stream.batches[0] == (0, [("m", 1, "a")])
    assert sorted((r for _, rows in stream.batches[1:] for r in rows), key=lambda r: r[0]) \
        == [("n", 2, "b"), ("o", None, "c=d")]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("folder", "error_class"), [
    ("k=3000000000", "INVALID_PARTITION_VALUE"),  # k was inferred as int
    ("j=2", "CONFLICTING_PARTITION_COLUMN_NAMES"),
])
def test_a_new_file_that_does_not_fit_the_partitions_fails_the_batch(
        spark, tmp_path, folder, error_class) -> None:
    root = tmp_path / "ints"
    put(root, "k=1", "a")
    stream = Stream(spark, root, "v string")
    query = stream.start()
    try:
        query.processAllAvailable()
        put(root, folder, "b")
        with pytest.raises(StreamingQueryException) as failure:
            query.processAllAvailable()
    finally:
        query.stop()
    assert f"[{error_class}]" in str(failure.value)
    assert stream.batches == [(0, [("a", 1)])]


def test_a_restart_rereads_the_folders_and_may_widen_a_type(spark, tmp_path) -> None:
    root = tmp_path / "widen"
    put(root, "k=1", "a")
    stream = Stream(spark, root, "v string")
    assert stream.run_available() == [(0, [("a", 1)])]
    put(root, "k=3000000000", "b")
    assert stream.frame().schema.simpleString() == "struct<v:string,k:bigint>"
    assert stream.run_available() == [(1, [("b", 3000000000)])]


def test_a_batch_rerun_after_a_restart_reads_the_same_partition_values(spark, dated) -> None:
    stream = Stream(spark, dated, "v string")
    first = stream.run_available()
    os.remove(os.path.join(stream.checkpoint, "commits", "0"))  # died before the commit
    put(dated, "date=2024-01-03", "z")  # logged batch 0 must not take it
    assert stream.run_available() == [*first, (1, [("z", dt.date(2024, 1, 3))])]


def test_folders_appearing_after_the_stream_is_defined_add_no_columns(spark, tmp_path) -> None:
    root = tmp_path / "late"
    root.mkdir()
    stream = Stream(spark, root, "v string")
    assert stream.frame().schema.simpleString() == "struct<v:string>"
    assert stream.run_available() == []
    put(root, "k=1", "p")  # a restart defines the stream again, with the column
    assert stream.run_available() == [(0, [("p", 1)])]


def test_a_file_column_named_like_a_partition_takes_the_folder_value(spark, tmp_path) -> None:
    folder = tmp_path / "shadow" / "v=5"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"v": ["in-file"], "w": [1]}), str(folder / "p.parquet"))
    stream = Stream(spark, tmp_path / "shadow", "v string, w long")
    assert stream.frame().schema.simpleString() == "struct<w:bigint,v:string>"
    assert stream.run_available() == [(0, [(1, "5")])]


def test_base_path_reads_a_partition_folder_with_its_column(spark, dated) -> None:
    # Spark 4.3 gives this schema, then fails each batch reading the file (its batches
    # replace basePath with the path); unbounded reads the rows.
    stream = Stream(spark, dated / "date=2024-01-01", "v string", basePath=str(dated))
    assert stream.frame().schema.simpleString() == "struct<v:string,date:date>"
    assert stream.run_available() == [(0, [("x", dt.date(2024, 1, 1))])]


def test_a_glob_path_has_no_partition_columns(spark, dated) -> None:
    reader = spark.readStream.schema("v string")
    assert reader.parquet(str(dated / "date=*")).columns == ["v"]


def test_a_user_type_that_cannot_hold_a_folder_value_fails_when_defined(spark, tmp_path):
    root = tmp_path / "big"
    put(root, "k=3000000000", "a")
    with pytest.raises(SparkRuntimeException, match=r"\[INVALID_PARTITION_VALUE\] Failed to "
                       r"cast value '3000000000' to data type \"INT\" for partition column `k`"):
        spark.readStream.schema("v string, k int").parquet(str(root))


def test_partitions_pickle_with_their_layout_and_read_lazily_or_eagerly(dated) -> None:
    ctx = SourceContext({"path": str(dated)}, StructType.fromDDL("v string"), None)
    source = FileSource("parquet", ctx)
    end = source.latest_offset(None)
    assert end is not None
    parts = [pickle.loads(pickle.dumps(p)) for p in source.partitions(None, end)]
    eager = pa.concat_tables([p.read() for p in parts])
    assert sorted(eager.to_pylist(), key=str) == [
        {"v": "x", "date": dt.date(2024, 1, 1)}, {"v": "y", "date": dt.date(2024, 1, 2)}]
    scans = [p.scan() for p in parts]
    assert all(s is not None for s in scans)
    lazy = [row for s in scans if s is not None for row in s[0].collect().rows()]
    assert sorted(lazy) == [("x", dt.date(2024, 1, 1)), ("y", dt.date(2024, 1, 2))]


@pytest.mark.timeout(90)
def test_a_dataframe_defined_earlier_keeps_its_partition_types_on_a_new_run(spark, tmp_path):
    root = tmp_path / "kept"
    put(root, "k=1", "a")
    frame = spark.readStream.schema("v string").parquet(str(root))
    seen: Batches = []

    def run() -> Any:
        query = (frame.writeStream.option("checkpointLocation", str(tmp_path / "cp-kept"))
                 .foreachBatch(lambda df, i: seen.append((i, [tuple(r) for r in df.collect()])))
                 .trigger(availableNow=True).start())
        with contextlib.suppress(StreamingQueryException):  # the failure is kept below
            query.awaitTermination(60)
        return query.exception()

    assert run() is None
    put(root, "k=3000000000", "b")  # Spark fixed k as int when the DataFrame was defined
    failure = run()
    assert failure is not None and "[INVALID_PARTITION_VALUE]" in str(failure)
    assert seen == [(0, [("a", 1)])]


def test_a_base_path_that_does_not_hold_the_path_is_refused(spark, dated, tmp_path) -> None:
    (tmp_path / "elsewhere").mkdir()
    reader = spark.readStream.schema("v string").option("basePath", str(tmp_path / "elsewhere"))
    with pytest.raises(AnalysisException, match="Wrong basePath"):
        reader.parquet(str(dated))


def test_a_lazy_scan_counts_rows_from_footers_and_leaves_mixed_or_unreadable_files_to_read(
        tmp_path: Path) -> None:
    schema = StructType.fromDDL("v string, n long")
    first, second, other, broken = (str(tmp_path / f"{n}.parquet") for n in "abcd")
    pq.write_table(pa.table({"v": ["x", "y"], "n": [1, 2]}), first)
    pq.write_table(pa.table({"v": ["z"], "n": [3]}), second)
    pq.write_table(pa.table({"v": ["w"], "n": pa.array([4], pa.int32())}), other)
    Path(broken).write_bytes(b"not parquet")

    def scan(*paths: str) -> Any:
        return FileInputPartition("parquet", paths, schema, ()).scan()

    scanned = scan(first, second)
    assert scanned is not None and scanned[1] == 3
    assert scanned[0].collect().rows() == [("x", 1), ("y", 2), ("z", 3)]
    assert scan(first, other) is None  # two layouts: read() casts each file
    assert scan(first, broken) is None  # read() reports the file by name
