"""A windowed aggregation whose state the memory store keeps in pieces by window
(``state/pieces.py``, taken by large batches; here forced on small ones): the emitted
rows, through a stop and a restart from the checkpoint, are those of the state kept
as one frame."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from unbounded.runtime.stateful import aggregate
from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.state import memory, pieces
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def w(start: float, end: float) -> Row:
    return Row(start=at(start), end=at(end))


BLOCKS = [
    [(at(0), 1), (at(1), 1), (at(1), 2), (at(6), 1), (at(12), 3)],
    [(at(3), 1), (at(7), 2), (at(13), 3), (at(21), 1)],  # the watermark becomes 10:11
    [(at(4), 1), (at(14), 2), (at(30), 1)],  # 10:04 is late
    [(at(45), 5)],
]
EXPECTED = {(w(0, 5), 1, 3), (w(0, 5), 2, 1), (w(5, 10), 1, 1), (w(5, 10), 2, 1),
            (w(10, 15), 3, 2), (w(10, 15), 2, 1), (w(20, 25), 1, 1), (w(30, 35), 1, 1)}


def run_with_restart(spark: Any, cp: Path) -> list[tuple[object, ...]]:
    stream = MemoryStream("ts TIMESTAMP, k BIGINT", spark)
    df = (stream.toDF().withWatermark("ts", "10 minutes")
          .groupBy(F.window("ts", "5 minutes"), "k").count())
    out: list[tuple[object, ...]] = []

    def sink(batch: Any, batch_id: int) -> None:
        out.extend(tuple(r) for r in batch.collect())

    for blocks in (BLOCKS[:2], BLOCKS[2:]):
        q = (df.writeStream.outputMode("append").foreachBatch(sink)
             .option("checkpointLocation", str(cp)).start())
        try:
            for block in blocks:
                stream.addData(block)
                q.processAllAvailable(30)
        finally:
            q.stop()
    return out


def test_windows_kept_in_pieces_emit_what_a_whole_state_emits_across_a_restart(
        spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate, "PACK_MIN_ROWS", 0)  # every batch combines in the store
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)
    folds: list[int] = []
    real = memory.MemoryStateStore._combine_pieces

    def counted(self: memory.MemoryStateStore, *args: Any) -> Any:
        folds.append(1)
        return real(self, *args)

    monkeypatch.setattr(memory.MemoryStateStore, "_combine_pieces", counted)
    in_pieces = run_with_restart(spark, tmp_path / "pieces")
    assert folds  # the pieces were taken
    monkeypatch.setattr(pieces, "MAX_PIECES", 0)  # every state stays whole
    whole = run_with_restart(spark, tmp_path / "whole")
    assert sorted(in_pieces, key=repr) == sorted(whole, key=repr)
    assert len(in_pieces) == len(set(in_pieces))
    assert set(in_pieces) == EXPECTED
