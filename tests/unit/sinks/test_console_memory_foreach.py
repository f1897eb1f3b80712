"""The console, memory, foreachBatch and foreach sinks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from unbounded.errors import AnalysisException
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.console import ConsoleSink
from unbounded.sinks.memory import MemorySink
from unbounded.sql import DataFrame, Row
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

BAR = "-------------------------------------------"


def _ctx(options=None, name=None, mode="append"):
    return SinkContext("qid", name, dict(options or {}), mode, None)


def _batch(batch_id, table):
    return MicroBatch(batch_id, table.schema, [table])


def test_console_sink_prints_a_batch_header_and_the_table_like_spark(capsys):
    sink = ConsoleSink("console", _ctx())
    sink.add_batch(3, _batch(3, pa.table({"id": [1, 2], "word": ["a", None]})))
    assert capsys.readouterr().out == (
        f"{BAR}\n"
        "Batch: 3\n"
        f"{BAR}\n"
        "+---+----+\n"
        "| id|word|\n"
        "+---+----+\n"
        "|  1|   a|\n"
        "|  2|NULL|\n"
        "+---+----+\n"
        "\n")


def test_console_sink_honours_num_rows_and_truncate(capsys):
    sink = ConsoleSink("console", _ctx({"numRows": "1", "truncate": "false"}))
    sink.add_batch(0, _batch(0, pa.table({"s": ["x" * 25, "y"]})))
    assert capsys.readouterr().out == (
        f"{BAR}\nBatch: 0\n{BAR}\n"
        "+-------------------------+\n"
        "|s                        |\n"
        "+-------------------------+\n"
        "|xxxxxxxxxxxxxxxxxxxxxxxxx|\n"
        "+-------------------------+\n"
        "only showing top 1 row\n"
        "\n")
    with pytest.raises(AnalysisException, match="numRows"):
        ConsoleSink("console", _ctx({"numRows": "many"}))


def test_console_sink_prints_an_empty_batch_as_a_header_only_table(capsys):
    sink = ConsoleSink("console", _ctx())
    sink.add_batch(0, MicroBatch(0, pa.schema([("value", pa.int64())]), []))
    assert capsys.readouterr().out == (
        f"{BAR}\nBatch: 0\n{BAR}\n+-----+\n|value|\n+-----+\n+-----+\n\n")


def test_console_query_prints_each_batch(spark, capsys):
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("console").start()
    try:
        stream.addData([(1,)])
        q.processAllAvailable(30)
        stream.addData([(2,)])
        q.processAllAvailable(30)
    finally:
        q.stop()
    out = capsys.readouterr().out
    assert f"{BAR}\nBatch: 0\n{BAR}\n+---+\n| id|\n+---+\n|  1|\n+---+\n\n" in out
    assert f"{BAR}\nBatch: 1\n{BAR}\n+---+\n| id|\n+---+\n|  2|\n+---+\n\n" in out


def test_memory_sink_appends_batches_and_ignores_a_replayed_batch():
    sink = MemorySink("memory", _ctx(name="mem_append_direct"))
    sink.add_batch(0, _batch(0, pa.table({"id": [1]})))
    sink.add_batch(1, _batch(1, pa.table({"id": [2, 3]})))
    sink.add_batch(1, _batch(1, pa.table({"id": [99]})))
    assert sink.table().to_pydict() == {"id": [1, 2, 3]}
    assert sink.last_committed_batch() == 1


def test_memory_sink_needs_a_query_name():
    with pytest.raises(AnalysisException, match="queryName"):
        MemorySink("memory", _ctx())


def test_memory_sink_append_mode_query(spark):
    stream = MemoryStream("id LONG, word STRING", spark)
    q = (stream.toDF().where("id > 0").writeStream.format("memory")
         .queryName("mem_append_q").start())
    try:
        stream.addData([(1, "a"), (0, "skip")])
        q.processAllAvailable(30)
        stream.addData([(2, "b")])
        q.processAllAvailable(30)
    finally:
        q.stop()
    assert sorted(spark.table("mem_append_q").collect()) == [Row(id=1, word="a"),
                                                              Row(id=2, word="b")]


def test_memory_sink_complete_mode_holds_the_latest_result_only(spark):
    stream = MemoryStream("word STRING", spark)
    counts = stream.toDF().groupBy("word").count()
    q = (counts.writeStream.format("memory").outputMode("complete")
         .queryName("mem_complete_q").start())
    try:
        stream.addData([("a",), ("b",), ("a",)])
        q.processAllAvailable(30)
        assert sorted(tuple(r) for r in spark.table("mem_complete_q").collect()) == [
            ("a", 2), ("b", 1)]
        stream.addData([("a",), ("c",)])
        q.processAllAvailable(30)
    finally:
        q.stop()
    assert sorted(tuple(r) for r in spark.table("mem_complete_q").collect()) == [
        ("a", 3), ("b", 1), ("c", 1)]


def test_foreach_batch_receives_a_dataframe_and_the_batch_id(spark):
    stream = MemoryStream("id LONG", spark)
    seen: list[tuple[int, list[int], bool]] = []

    def handle(df, batch_id):
        assert isinstance(df, DataFrame)
        seen.append((batch_id, sorted(r.doubled for r in df.collect()), df.isStreaming))

    q = (stream.toDF().select((F.col("id") * 2).alias("doubled")).writeStream
         .foreachBatch(handle).start())
    try:
        stream.addData([(1,), (2,)])
        q.processAllAvailable(30)
        stream.addData([(5,)])
        q.processAllAvailable(30)
    finally:
        q.stop()
    assert seen == [(0, [2, 4], False), (1, [10], False)]


def test_foreach_with_a_function_gets_every_row(spark):
    stream = MemoryStream("id LONG, word STRING", spark)
    got: list[Row] = []
    q = stream.toDF().writeStream.foreach(got.append).start()
    try:
        stream.addData([(1, "a"), (2, "b")])
        q.processAllAvailable(30)
    finally:
        q.stop()
    assert sorted(got) == [Row(id=1, word="a"), Row(id=2, word="b")]
    assert got[0].word in ("a", "b")


class RecordingWriter:
    """A ForeachWriter-style object that logs every call."""

    def __init__(self, accept: bool = True) -> None:
        self.calls: list[tuple] = []
        self.accept = accept

    def open(self, partition_id, epoch_id):
        self.calls.append(("open", partition_id, epoch_id))
        return self.accept

    def process(self, row):
        self.calls.append(("process", row.id))

    def close(self, error):
        self.calls.append(("close", error))


def _run_foreach(spark, writer, blocks):
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.foreach(writer).start()
    try:
        for block in blocks:
            stream.addData(block)
            q.processAllAvailable(30)
    finally:
        q.stop()


def test_foreach_writer_is_opened_fed_and_closed_per_partition_and_epoch(spark):
    writer = RecordingWriter()
    _run_foreach(spark, writer, [[(1,), (2,)], [(3,)]])
    by_epoch: dict[int, list[tuple]] = {}
    epoch = -1
    for call in writer.calls:
        if call[0] == "open":
            epoch = call[2]
        by_epoch.setdefault(epoch, []).append(call)
    assert sorted(by_epoch) == [0, 1]
    for calls in by_epoch.values():
        opens = [c for c in calls if c[0] == "open"]
        closes = [c for c in calls if c[0] == "close"]
        assert len(opens) == len(closes) >= 1
        assert all(c == ("close", None) for c in closes)
    assert sorted(c[1] for c in by_epoch[0] if c[0] == "process") == [1, 2]
    assert [c[1] for c in by_epoch[1] if c[0] == "process"] == [3]
    # every process call sits between an open and its close
    depth = 0
    for call in writer.calls:
        depth += {"open": 1, "close": -1}.get(call[0], 0)
        assert depth in (0, 1)
        if call[0] == "process":
            assert depth == 1


def test_foreach_writer_that_declines_open_gets_no_rows_but_is_closed(spark):
    writer = RecordingWriter(accept=False)
    _run_foreach(spark, writer, [[(1,), (2,)]])
    assert [c for c in writer.calls if c[0] == "process"] == []
    assert writer.calls.count(("close", None)) == \
        len([c for c in writer.calls if c[0] == "open"]) >= 1


def test_foreach_rejects_an_object_without_process(spark):
    stream = MemoryStream("id LONG", spark)
    with pytest.raises(TypeError, match="process"):
        stream.toDF().writeStream.foreach(object())
