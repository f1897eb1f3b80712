"""Pipelined micro-batches: batch N+1 is read while batch N is written, and nothing of
N+1 becomes durable before ``commits/N``."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

import pipeline_probes as probes
from unbounded.checkpoint.logs import CommitLog, OffsetLog
from unbounded.sinks.registry import SINK_FORMATS
from unbounded.sources.registry import SOURCE_FORMATS

_WAIT_S = 10.0


@pytest.fixture(autouse=True)
def ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SOURCE_FORMATS, "ticks", "pipeline_probes:TickSource")
    monkeypatch.setitem(SINK_FORMATS, "preparing", "pipeline_probes:PreparingSink")
    probes.reset()


def _start(spark: Any, checkpoint: str, write: Any, batches: int = 3) -> Any:
    return (spark.readStream.format("ticks").option("batches", batches).load()
            .writeStream.foreachBatch(write).option("checkpointLocation", checkpoint)
            .trigger(availableNow=True).start())


def _rows(df: Any) -> list[int]:
    return [r.n for r in df.collect()]


def test_next_batch_is_read_while_the_current_batch_is_written(spark, tmp_path):
    overlapped: list[bool] = []

    def write(df: Any, batch_id: int) -> None:
        wait_s = _WAIT_S if batch_id < 2 else 0.3  # the last batch has nothing after it
        overlapped.append(probes.read_started(batch_id + 1).wait(wait_s))

    query = _start(spark, str(tmp_path / "cp"), write)
    assert query.awaitTermination(60)
    assert overlapped == [True, True, False]


def test_without_pipelining_the_next_batch_waits_for_the_commit(spark, tmp_path):
    spark.conf.set("spark.unbounded.streaming.pipelineBatches", "false")
    overlapped: list[bool] = []

    def write(df: Any, batch_id: int) -> None:
        overlapped.append(probes.read_started(batch_id + 1).wait(0.3))

    query = _start(spark, str(tmp_path / "cp"), write)
    assert query.awaitTermination(60)
    assert overlapped == [False, False, False]


def test_stop_drops_the_read_ahead_and_a_restart_reads_it_once(spark, tmp_path):
    checkpoint = str(tmp_path / "cp")
    seen: list[int] = []
    started: list[Any] = []
    ready = threading.Event()

    def write_then_stop(df: Any, batch_id: int) -> None:
        seen.extend(_rows(df))
        assert probes.read_started(1).wait(_WAIT_S)  # batch 1 is being read ahead
        assert ready.wait(_WAIT_S)
        started[0].stop()

    started.append(_start(spark, checkpoint, write_then_stop))
    ready.set()
    assert started[0].awaitTermination(60)
    assert started[0].exception() is None
    assert seen == [0]
    assert OffsetLog(os.path.join(checkpoint, "offsets")).batch_ids() == [0]
    assert CommitLog(os.path.join(checkpoint, "commits")).batch_ids() == [0]

    query = _start(spark, checkpoint, lambda df, batch_id: seen.extend(_rows(df)))
    assert query.awaitTermination(60)
    assert seen == [0, 1, 2]


def test_sink_set_up_runs_while_the_first_batch_is_read(spark, tmp_path):
    probes.PreparingSink.rows = []
    query = (spark.readStream.format("ticks").option("batches", 2)
             .option("waitForPrepare", "true").load()
             .writeStream.format("preparing").option("checkpointLocation", str(tmp_path))
             .trigger(availableNow=True).start())
    assert query.awaitTermination(60)
    assert query.exception() is None
    assert probes.READ_SAW_PREPARE == [True]
    assert probes.PreparingSink.rows == [0, 1]


def test_next_batch_is_constructed_while_the_current_batch_is_written(spark, tmp_path):
    """Asking the sources for batch N+1 (a file source lists and logs there) runs beside
    batch N's stages and sink, not before them on the query thread."""
    seen: list[int] = []

    def write(df: Any, batch_id: int) -> None:
        seen.extend(_rows(df))
        probes.sink_ran(batch_id).set()

    query = (spark.readStream.format("ticks").option("batches", 3)
             .option("latestWaitsForSink", "true").load()
             .writeStream.foreachBatch(write).option("checkpointLocation", str(tmp_path))
             .trigger(availableNow=True).start())
    assert query.awaitTermination(60)
    assert query.exception() is None
    assert seen == [0, 1, 2]
    assert probes.LATEST_SAW_SINK == [True, True]


def test_a_failed_read_ahead_fails_the_query_after_the_current_batch_commits(spark, tmp_path):
    checkpoint = str(tmp_path / "cp")
    seen: list[int] = []
    query = (spark.readStream.format("ticks").option("batches", 3)
             .option("failLatestFrom", 1).load()
             .writeStream.foreachBatch(lambda df, batch_id: seen.extend(_rows(df)))
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    with pytest.raises(Exception, match="cannot be listed"):
        query.awaitTermination(60)
    assert seen == [0]
    assert CommitLog(os.path.join(checkpoint, "commits")).batch_ids() == [0]


def test_a_failed_batch_waits_for_the_read_ahead_before_the_query_stops(spark, tmp_path):
    """No write of batch N+1's construction may land after the run has ended."""
    def fail(df: Any, batch_id: int) -> None:
        assert probes.read_started(1).wait(_WAIT_S)
        raise RuntimeError("the sink failed")

    query = _start(spark, str(tmp_path / "cp"), fail)
    with pytest.raises(Exception, match="the sink failed"):
        query.awaitTermination(60)
    assert not [t for t in threading.enumerate() if t.name.startswith("unbounded-ahead-lane")]
