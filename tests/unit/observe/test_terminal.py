"""The backfill progress bar, drawn into a rich Console forced to act as a terminal."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

import unbounded.sql.streaming as streaming
from unbounded.observe import terminal
from unbounded.observe.terminal import BackfillBar, offset_position
from unbounded.runtime.triggers import AvailableNow, Once, ProcessingTime, Trigger
from unbounded.sql import SparkSession
from unbounded.sql.streaming import backfill_bar_for
from unbounded.testing import MemoryStream


def _console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, record=True)


def _kafka(start: dict[str, int] | None, end: dict[str, int], rows: int,
           metrics: dict[str, str] | None = None) -> dict[str, Any]:
    return {"description": "KafkaV2[Subscribe[events]]", "numInputRows": rows,
            "startOffset": None if start is None else {"events": start},
            "endOffset": {"events": end}, "metrics": metrics or {}}


def _drawn(bar: BackfillBar, *progress: dict[str, Any]) -> str:
    bar.started("id", "run", None, "t", False)
    for sources in progress:
        bar.progressed({"sources": [sources]})
    bar.terminated("id", "run", None)
    return bar.progress.console.export_text()


def test_kafka_offsets_done_and_total_from_offsets_behind_latest() -> None:
    text = _drawn(BackfillBar(_console()),
                  _kafka(None, {"0": 10, "1": 20}, 30),
                  _kafka({"0": 10, "1": 20}, {"0": 25, "1": 35}, 30,
                         {"avgOffsetsBehindLatest": "35.0"}))
    assert "KafkaV2[Subscribe[events]]" in text
    assert "60/130 offsets" in text


def test_a_source_without_kafka_offsets_counts_rows_without_a_total() -> None:
    source = {"description": "MemoryStream[v]", "numInputRows": 7, "startOffset": 0,
              "endOffset": 1, "metrics": {}}
    text = _drawn(BackfillBar(_console()), source, {**source, "numInputRows": 5})
    assert "MemoryStream[v]" in text
    assert "12/? rows" in text


def test_offset_position_reads_only_topic_partition_offset_maps() -> None:
    assert offset_position('{"t": {"0": 4, "1": 6}}') == (10, 2)
    assert offset_position({"logOffset": 3}) is None
    assert offset_position(5) is None
    assert offset_position("not json") is None


@pytest.mark.parametrize(("trigger", "terminal_", "drawn"), [
    (AvailableNow(), True, True), (Once(), True, True),
    (ProcessingTime(0), True, False), (AvailableNow(), False, False)])
def test_only_a_backfill_at_a_terminal_gets_a_bar(trigger: Trigger, terminal_: bool,
                                                  drawn: bool) -> None:
    console = Console(file=io.StringIO(), force_terminal=terminal_)
    assert (backfill_bar_for(trigger, console) is not None) is drawn


def test_a_trigger_once_query_draws_its_source_line(
        spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    console = _console()
    monkeypatch.setattr(streaming, "backfill_bar",
                        lambda console_=None: terminal.backfill_bar(console))
    stream = MemoryStream("v int", spark)
    stream.addData([(1,), (2,), (3,)])
    query = stream.toDF().writeStream.format("memory").queryName("barred") \
        .trigger(once=True).start()
    query.awaitTermination(30)
    assert "3/? rows" in console.export_text()


def test_a_file_source_counts_files_against_files_outstanding() -> None:
    def files(rows: int, done: int, left: int) -> dict[str, Any]:
        return {"description": "FileStreamSource[file:/in]", "numInputRows": rows,
                "startOffset": None, "endOffset": {"logOffset": 0},
                "metrics": {"numFilesProcessed": str(done), "numFilesOutstanding": str(left)}}
    text = _drawn(BackfillBar(_console()), files(10, 2, 6), files(10, 4, 4))
    assert "4/8 files" in text
    assert "20/? rows" not in text
