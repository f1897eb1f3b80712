"""The memory store's state kept in pieces by window (``state/pieces.py``): a batch
rebuilds only the pieces of its windows, eviction drops closed pieces whole, and the
state, delta files and returned rows are those of the store kept as one frame."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from state_files import delta_rows, sorted_rows
from unbounded.state import memory, pieces
from unbounded.state.base import FOUND_COLUMN, OLD_SUFFIX, StateSchema, StateStoreId
from unbounded.state.memory import MemoryStateStoreProvider
from unbounded.state.pieces import Pieces, piece_column

SCHEMA = StateSchema(
    key=pa.schema([("w", pa.int64()), ("k", pa.int32())]),
    value=pa.schema([("n", pa.int64())]),
)
COMBINE = [pl.col("n").sum().alias("n")]
MERGE = [pl.when(pl.col(FOUND_COLUMN)).then(pl.col(f"n{OLD_SUFFIX}") + pl.col("n"))
         .otherwise(pl.col("n")).alias("n")]


@pytest.fixture(autouse=True)
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)  # these frames count as large


def provider(root: Path, name: str) -> MemoryStateStoreProvider:
    return MemoryStateStoreProvider(StateStoreId(str(root / name), 0, 0), SCHEMA)


def batch(w: list[int | None], k: list[int], n: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"w": w, "k": k, "n": n},
                        schema={"w": pl.Int64, "k": pl.Int32, "n": pl.Int64})


def closed_at(watermark: int) -> pl.Expr:
    return pl.col("w") + 5 <= watermark


def rows_of(frame: pl.DataFrame | pa.Table) -> list[tuple[object, ...]]:
    return sorted_rows(frame, ["w", "k", "n"])


def test_a_batch_rebuilds_only_the_pieces_of_its_windows_and_drops_closed_ones(
        tmp_path: Path) -> None:
    p = provider(tmp_path, "a")
    first = p.get_store(0)
    first.combine_fold(batch([0, 5, 10, 10], [1, 1, 1, 2], [1, 1, 1, 1]), COMBINE,
                       closed_at(0))
    first.commit()
    before = p.pieces(1)
    assert before is not None and sorted(before.parts) == [0, 5, 10]
    second = p.get_store(1)
    fold = second.combine_fold(batch([10, 10], [2, 3], [5, 5]), COMBINE, closed_at(5))
    assert fold is not None
    second.commit()
    after = p.pieces(2)
    assert after is not None and sorted(after.parts) == [5, 10]
    assert after.parts[5] is before.parts[5]  # untouched: the same rows, not a copy
    assert rows_of(fold.evicted) == [(0, 1, 1)]
    assert rows_of(fold.merged) == [(10, 2, 6), (10, 3, 5)]
    assert set(rows_of(p.get_store(2).scan())) == {(5, 1, 1), (10, 1, 1), (10, 2, 6),
                                                   (10, 3, 5)}


@pytest.mark.parametrize("max_pieces", [0, pieces.MAX_PIECES])
def test_kept_in_pieces_or_whole_the_state_and_its_files_are_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_pieces: int) -> None:
    """Pieces split from a recovered or merged frame, a batch over several windows,
    a window closed in the batch that made it: as the whole-frame fold."""
    monkeypatch.setattr(pieces, "MAX_PIECES", max_pieces)
    batches = [
        (batch([0, 0, 5, 5, -5], [1, 2, 1, 1, 7], [1, 2, 3, 4, 6]), None),
        (batch([5, 5, 10, 0, -5], [1, 3, 1, 1, 8], [10, 20, 30, 40, 50]), closed_at(0)),
        (batch([10, 10, 5, 15], [1, 2, 3, 900], [1, 1, 1, 1]), closed_at(10)),
        (batch([15, 20, 20], [900, -4, -4], [2, 2, 1]), closed_at(10)),
    ]
    piecewise, whole = provider(tmp_path, "pieces"), provider(tmp_path, "whole")
    for version, (rows, evict) in enumerate(batches):
        a, b = piecewise.get_store(version), whole.get_store(version)
        got = a.combine_fold(rows, COMBINE, evict)
        want = b.merge_fold(rows.group_by("w", "k").agg(COMBINE), MERGE, evict)
        assert got is not None
        assert rows_of(got.merged) == rows_of(want.merged)
        assert rows_of(got.evicted) == rows_of(want.evicted)
        assert rows_of(a.scan()) == rows_of(b.scan())
        assert a.metrics.num_rows_removed == b.metrics.num_rows_removed
        a.commit()
        b.commit()
        assert delta_rows(tmp_path, "pieces", version + 1) == \
            delta_rows(tmp_path, "whole", version + 1)
        assert (piecewise.pieces(version + 1) is not None) == (max_pieces > 0 and
                                                              evict is not None)
    recovered = provider(tmp_path, "pieces").get_store(len(batches))
    assert set(rows_of(recovered.scan())) == {(10, 1, 31), (10, 2, 1), (15, 900, 3), (20, -4, 3)}


def test_a_null_window_stays_in_its_own_piece(tmp_path: Path) -> None:
    """A NULL in the column (stored through the merge) is never closed."""
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(batch([None, 0], [1, 1], [1, 1]), MERGE, None)
    fold = store.combine_fold(batch([5, 5], [2, 2], [1, 1]), COMBINE, closed_at(5))
    assert fold is not None
    assert rows_of(fold.evicted) == [(0, 1, 1)]
    assert set(rows_of(store.scan())) == {(5, 2, 2), (None, 1, 1)}


def test_only_a_predicate_over_one_integer_or_temporal_key_column_splits_the_state() -> None:
    schema = pl.Schema({"w": pl.Int64, "t": pl.Datetime("us", "UTC"), "g": pl.String,
                        "n": pl.Int64})
    keys = ["w", "t", "g"]
    assert piece_column(pl.col("w") + 5 <= 0, schema, keys) == "w"
    assert piece_column(pl.col("t") <= dt.datetime(2026, 1, 1, tzinfo=dt.UTC), schema,
                        keys) == "t"
    assert piece_column(None, schema, keys) is None
    assert piece_column(pl.col("g") == "x", schema, keys) is None  # not a number
    assert piece_column(pl.col("n") > 4, schema, keys) is None  # a value column
    assert piece_column((pl.col("w") > 0) & (pl.col("t") < 0), schema, keys) is None


def test_a_temporal_column_splits_and_probes_by_its_values() -> None:
    t = pl.Series("t", [dt.datetime(2026, 1, 1, s, tzinfo=dt.UTC) for s in (0, 1, 0)],
                  dtype=pl.Datetime("us", "UTC"))
    split = Pieces.split(pl.DataFrame([t, pl.Series("n", [1, 2, 3])]), "t")
    assert split is not None and len(split.parts) == 2
    assert split.probe().schema == pl.Schema({"t": pl.Datetime("us", "UTC")})
    assert rows_of_n(split.frame) == [1, 2, 3]


def rows_of_n(frame: pl.DataFrame) -> list[int]:
    return sorted(frame.get_column("n").to_list())


def test_pieces_that_would_outgrow_the_limit_over_batches_leave_the_state_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key column with few values when first split may gain a new value each batch
    (a grouping by the event time itself): past ``MAX_PIECES`` the state is kept whole
    from then on, with the same rows as before."""
    monkeypatch.setattr(pieces, "MAX_PIECES", 3)
    p = provider(tmp_path, "grows")
    first = p.get_store(0)
    first.combine_fold(batch([0, 5], [1, 1], [1, 1]), COMBINE, closed_at(0))
    first.commit()
    assert p.pieces(1) is not None and "w" not in p.unsplittable
    second = p.get_store(1)
    fold = second.combine_fold(batch([5, 10, 15], [1, 1, 1], [2, 1, 1]), COMBINE,
                               closed_at(0))
    assert fold is not None
    second.commit()
    assert p.pieces(2) is None and "w" in p.unsplittable
    assert set(rows_of(fold.merged)) == {(5, 1, 3), (10, 1, 1), (15, 1, 1)}
    assert set(rows_of(p.get_store(2).scan())) == {(0, 1, 1), (5, 1, 3), (10, 1, 1),
                                                   (15, 1, 1)}


@pytest.mark.parametrize("by", [[2, 0], None])
@pytest.mark.parametrize("stored_n", [[1, 2, 3], [1, None, 3]])
def test_an_updated_piece_holds_its_other_rows_and_all_merged_ones(
        by: list[int] | None, stored_n: list[int | None]) -> None:
    """Values written over the replaced rows (their merged rows known, no NULLs) or the
    replaced rows filtered out: the same rows."""
    piece = batch([5, 5, 5], [1, 2, 3], stored_n)  # type: ignore[arg-type]
    merged = batch([5, 5, 5], [3, 4, 1], [30, 40, 10])
    replaced = pieces.Replaced(np.array([0, 2]), None if by is None else np.array(by))
    got = pieces.updated(piece, merged, replaced, ["w", "k"])
    assert rows_of(got) == [(5, 1, 10), (5, 2, stored_n[1]), (5, 3, 30), (5, 4, 40)]
    assert got.schema == piece.schema


def test_an_updated_piece_keeps_its_columns_chunked_alike() -> None:
    """Written value columns take the key columns' chunks: Arrow gets whole record
    batches, not one rechunked copy of every column."""
    piece = pl.concat([batch([5, 5], [1, 2], [1, 2]), batch([5], [3], [3])], rechunk=False)
    merged = batch([5, 5], [3, 4], [30, 40])
    got = pieces.updated(piece, merged, pieces.Replaced(np.array([2]), np.array([0])),
                         ["w", "k"])
    assert len(set(map(tuple, [c.chunk_lengths() for c in got.get_columns()]))) == 1
    assert rows_of(got) == [(5, 1, 1), (5, 2, 2), (5, 3, 30), (5, 4, 40)]
