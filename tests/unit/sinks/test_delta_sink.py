"""The Delta sink: txn per batch, skipped re-runs, modes, layout, schema, conflicts."""

from __future__ import annotations

import json
import os

import polars as pl
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from unbounded.errors import AnalysisException, ConcurrentQueryError
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.delta import DeltaSink, DeltaWriteSettings, committed_batch, write_batch
from unbounded.testing import MemoryStream


def _sink(path, mode="append", partition_by=(), query_id="q1", **options):
    ctx = SinkContext(query_id, None, {"path": str(path), **options}, mode, None,
                      partition_by)
    return DeltaSink("delta", ctx)


def _batch(batch_id, **columns):
    table = pa.table(columns)
    return MicroBatch(batch_id, table.schema, [table])


def _rows(path, *order):
    table = DeltaTable(str(path)).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: tuple(r[k] for k in order))


def _actions(path, version):
    with open(os.path.join(path, "_delta_log", f"{version:020d}.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_each_batch_is_one_commit_carrying_txn_with_query_id_and_batch_id(tmp_path):
    sink = _sink(tmp_path / "t")
    sink.add_batch(0, _batch(0, id=[1, 2], name=["a", "b"]))
    sink.add_batch(1, _batch(1, id=[3], name=["c"]))
    table = DeltaTable(str(tmp_path / "t"))
    assert table.version() == 1
    assert table.transaction_version("q1") == 1
    assert [a for a in _actions(str(tmp_path / "t"), 1) if "txn" in a] == [
        {"txn": {"appId": "q1", "version": 1}}]
    assert _rows(tmp_path / "t", "id") == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"},
                                           {"id": 3, "name": "c"}]


def test_rerun_batch_already_in_table_is_skipped_and_table_version_unchanged(tmp_path):
    _sink(tmp_path / "t").add_batch(0, _batch(0, id=[1]))
    _sink(tmp_path / "t").add_batch(1, _batch(1, id=[2]))
    fresh = _sink(tmp_path / "t")  # a restarted run re-running batches 0 and 1
    fresh.add_batch(1, _batch(1, id=[2]))
    fresh.add_batch(0, _batch(0, id=[1]))
    assert DeltaTable(str(tmp_path / "t")).version() == 1
    assert _rows(tmp_path / "t", "id") == [{"id": 1}, {"id": 2}]
    assert fresh.last_committed_batch() == 1


def test_another_query_id_writes_its_own_batches(tmp_path):
    _sink(tmp_path / "t", query_id="a").add_batch(0, _batch(0, id=[1]))
    _sink(tmp_path / "t", query_id="b").add_batch(0, _batch(0, id=[2]))
    assert _rows(tmp_path / "t", "id") == [{"id": 1}, {"id": 2}]
    assert committed_batch(str(tmp_path / "t"), "a") == 0
    assert committed_batch(str(tmp_path / "t"), "c") is None


def test_empty_batch_commits_only_its_txn(tmp_path):
    sink = _sink(tmp_path / "t")
    sink.add_batch(0, _batch(0, id=[1]))
    sink.add_batch(1, MicroBatch(1, pa.schema([("id", pa.int64())]), []))
    table = DeltaTable(str(tmp_path / "t"))
    assert (table.version(), table.transaction_version("q1")) == (1, 1)
    kinds = sorted(next(iter(a)) for a in _actions(str(tmp_path / "t"), 1))
    assert kinds == ["commitInfo", "txn"]
    assert _rows(tmp_path / "t", "id") == [{"id": 1}]


def test_first_empty_batch_creates_the_table_with_the_query_schema(tmp_path):
    _sink(tmp_path / "t").add_batch(0, MicroBatch(0, pa.schema([("id", pa.int64())]), []))
    table = DeltaTable(str(tmp_path / "t"))
    assert (table.version(), table.transaction_version("q1")) == (0, 0)
    assert [f.name for f in table.schema().fields] == ["id"]


def test_complete_mode_replaces_the_table_each_batch(tmp_path):
    sink = _sink(tmp_path / "t", mode="complete")
    sink.add_batch(0, _batch(0, k=["a"], n=[1]))
    sink.add_batch(1, _batch(1, k=["a", "b"], n=[2, 1]))
    assert _rows(tmp_path / "t", "k") == [{"k": "a", "n": 2}, {"k": "b", "n": 1}]
    sink.add_batch(1, _batch(1, k=["a", "b"], n=[2, 1]))  # a re-run changes nothing
    assert DeltaTable(str(tmp_path / "t")).version() == 1


def test_partition_by_writes_hive_folders_and_table_partition_columns(tmp_path):
    sink = _sink(tmp_path / "t", partition_by=("country",))
    sink.add_batch(0, _batch(0, id=[1, 2, 3], country=["de", "fr", "de"]))
    table = DeltaTable(str(tmp_path / "t"))
    assert table.metadata().partition_columns == ["country"]
    assert sorted(n for n in os.listdir(tmp_path / "t") if n.startswith("country=")) == [
        "country=de", "country=fr"]
    frame = pl.read_delta(str(tmp_path / "t")).sort("id")
    assert frame.select("id", "country").rows() == [(1, "de"), (2, "fr"), (3, "de")]


def test_new_column_fails_naming_merge_schema_and_merges_with_it(tmp_path):
    _sink(tmp_path / "t").add_batch(0, _batch(0, id=[1]))
    with pytest.raises(AnalysisException, match="mergeSchema") as info:
        _sink(tmp_path / "t").add_batch(1, _batch(1, id=[2], extra=["x"]))
    assert info.value.error_class == "DELTA_FAILED_TO_MERGE_FIELDS"
    _sink(tmp_path / "t", mergeSchema="true").add_batch(1, _batch(1, id=[2], extra=["x"]))
    assert _rows(tmp_path / "t", "id") == [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]


@pytest.mark.parametrize(("mode", "options", "needle"), [
    ("update", {}, "does not support update output mode"),
    ("append", {"overwriteSchema": "true"}, "complete output mode only"),
    ("append", {"mergeSchema": "yes"}, "'true' or 'false'"),
])
def test_bad_mode_or_option_fails_before_the_query_starts(tmp_path, mode, options, needle):
    with pytest.raises(AnalysisException, match=needle):
        _sink(tmp_path / "t", mode=mode, **options)


def test_missing_path_fails_naming_start(tmp_path):
    with pytest.raises(AnalysisException, match=r"\.start"):
        DeltaSink("delta", SinkContext("q", None, {}, "append", None))


def test_same_query_committing_concurrently_fails_as_a_concurrent_transaction(tmp_path):
    path = str(tmp_path / "t")
    sink = _sink(path)
    sink.add_batch(0, _batch(0, id=[1]))
    stale = DeltaTable(path)
    write_deltalake(path, pa.table({"id": [2]}), mode="append", commit_properties=
                    CommitProperties(app_transactions=[Transaction("q1", 1)]))
    sink._writer._table = stale
    sink._writer.refresh = lambda: stale  # the other run's commit lands after our read
    with pytest.raises(ConcurrentQueryError, match="two runs of the query"):
        sink.add_batch(1, _batch(1, id=[2]))
    assert _rows(path, "id") == [{"id": 1}, {"id": 2}]


def test_after_its_own_commit_a_second_run_committing_the_next_batch_fails_ours(tmp_path):
    # the sink no longer re-reads the log between its own commits: the Delta conflict
    # check is what catches the other run's txn for the same query id
    path = str(tmp_path / "t")
    sink = _sink(path)
    sink.add_batch(0, _batch(0, id=[1]))
    write_deltalake(path, pa.table({"id": [2]}), mode="append", commit_properties=
                    CommitProperties(app_transactions=[Transaction("q1", 1)]))
    with pytest.raises(ConcurrentQueryError, match="two runs of the query"):
        sink.add_batch(1, _batch(1, id=[2]))
    assert _rows(path, "id") == [{"id": 1}, {"id": 2}]
    sink.add_batch(1, _batch(1, id=[2]))  # the handle was dropped: it reads the txn, skips
    assert DeltaTable(path).version() == 1


def test_a_batch_of_several_partitions_lands_whole_in_one_commit(tmp_path):
    parts = [pa.table({"id": [1, 2]}), pa.table({"id": [3]}), pa.table({"id": [4, 5]})]
    _sink(tmp_path / "t").add_batch(0, MicroBatch(0, parts[0].schema, parts))
    assert DeltaTable(str(tmp_path / "t")).version() == 0
    assert _rows(tmp_path / "t", "id") == [{"id": i} for i in range(1, 6)]


def test_a_concurrent_append_by_another_writer_does_not_conflict(tmp_path):
    path = str(tmp_path / "t")
    sink = _sink(path)
    sink.add_batch(0, _batch(0, id=[1]))
    stale = DeltaTable(path)
    write_deltalake(path, pa.table({"id": [100]}), mode="append")
    sink._writer._table = stale
    sink.add_batch(1, _batch(1, id=[2]))
    assert _rows(path, "id") == [{"id": 1}, {"id": 2}, {"id": 100}]
    assert DeltaTable(path).transaction_version("q1") == 1


def test_streaming_query_writes_delta_and_restart_writes_each_row_once(spark, tmp_path):
    out, cp = str(tmp_path / "t"), str(tmp_path / "cp")
    stream = MemoryStream("id LONG, name STRING", spark)
    writer = stream.toDF().writeStream.format("delta").option("checkpointLocation", cp)
    query = writer.start(out)
    stream.addData([(1, "a"), (2, "b")])
    query.processAllAvailable(30)
    stream.addData([(3, "c")])
    query.processAllAvailable(30)
    query.stop()
    table = DeltaTable(out)
    assert table.transaction_version(query.id) == table.version()
    assert pl.read_delta(out).sort("id").rows() == [(1, "a"), (2, "b"), (3, "c")]


def test_complete_mode_aggregation_keeps_only_the_latest_counts(spark, tmp_path):
    out = str(tmp_path / "t")
    stream = MemoryStream("k STRING", spark)
    counts = stream.toDF().groupBy("k").count()
    query = (counts.writeStream.format("delta").outputMode("complete")
             .option("checkpointLocation", str(tmp_path / "cp")).start(out))
    stream.addData([("a",), ("b",)])
    query.processAllAvailable(30)
    stream.addData([("a",)])
    query.processAllAvailable(30)
    query.stop()
    assert pl.read_delta(out).sort("k").rows() == [("a", 2), ("b", 1)]


def test_foreach_batch_helper_writes_each_batch_once(spark, tmp_path):
    out = str(tmp_path / "t")
    stream = MemoryStream("id LONG", spark)
    calls = []

    def land(df, batch_id):
        calls.append(write_batch(df, batch_id, out, "my-pipeline"))
        calls.append(write_batch(df, batch_id, out, "my-pipeline"))  # a retry: skipped

    query = stream.toDF().writeStream.foreachBatch(land).start()
    stream.addData([(1,), (2,)])
    query.processAllAvailable(30)
    query.stop()
    assert calls == [True, False]
    assert _rows(out, "id") == [{"id": 1}, {"id": 2}]
    assert committed_batch(out, "my-pipeline") == 0


def test_write_settings_carry_partitioning_for_the_helper(tmp_path):
    out = str(tmp_path / "t")
    settings = DeltaWriteSettings(out, partition_by=("k",))
    assert write_batch(pa.table({"k": ["x"], "v": [1]}), 3, out, "p", settings=settings)
    assert DeltaTable(out).metadata().partition_columns == ["k"]
    assert committed_batch(out, "p") == 3


def test_to_table_writes_a_path_based_delta_table(spark, tmp_path):
    out = str(tmp_path / "t")
    stream = MemoryStream("id LONG", spark)
    query = (stream.toDF().writeStream.option("checkpointLocation", str(tmp_path / "cp"))
             .toTable(f"delta.`{out}`"))
    stream.addData([(7,)])
    query.processAllAvailable(30)
    query.stop()
    assert _rows(out, "id") == [{"id": 7}]
    # Other names are warehouse tables; a query that cannot start creates none.
    spark.conf.set("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
    with pytest.raises(AnalysisException, match="checkpointLocation must be specified"):
        stream.toDF().writeStream.toTable("events")
    assert not (tmp_path / "warehouse" / "events").exists()
