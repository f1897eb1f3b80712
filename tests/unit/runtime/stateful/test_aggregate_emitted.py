"""The aggregation's gathering of what its state partitions emitted: a small batch's
rows come from one partition, which is taken as it is (no concatenation query), while
rows from several partitions are still concatenated, with relaxed types."""

from __future__ import annotations

import polars as pl

from unbounded.runtime.stateful.aggregate import _emitted

PARTIALS = pl.DataFrame({"w": [7], "n": [1]})


def _frame(w: list[int], n: list[int], n_type: type[pl.DataType] = pl.Int64) -> pl.DataFrame:
    return pl.DataFrame({"w": w, "n": n}, schema={"w": pl.Int64, "n": n_type})


def test_the_one_partition_that_emitted_is_taken_as_it_is() -> None:
    emitted = _frame([5], [3])
    out = _emitted([_frame([], []), emitted], PARTIALS)
    assert out is emitted
    assert out.rows() == [(5, 3)]


def test_no_partition_emitting_gives_an_empty_frame_of_the_state_columns() -> None:
    out = _emitted([_frame([], []), _frame([], [])], PARTIALS)
    assert (out.height, out.schema) == (0, _frame([], []).schema)


def test_several_partitions_emitting_are_concatenated_in_partition_order() -> None:
    out = _emitted([_frame([0, 5], [1, 2]), _frame([], []), _frame([10], [3])], PARTIALS)
    assert out.rows() == [(0, 1), (5, 2), (10, 3)]


def test_partitions_of_different_types_are_concatenated_with_relaxed_types() -> None:
    out = _emitted([_frame([1], [2], pl.Int32), _frame([5], [3])], PARTIALS)
    assert out.schema == pl.Schema({"w": pl.Int64, "n": pl.Int64})
    assert out.rows() == [(1, 2), (5, 3)]


def test_no_partitions_give_the_partials_columns_without_rows() -> None:
    out = _emitted([], PARTIALS)
    assert (out.height, out.schema) == (0, PARTIALS.schema)
