"""The fold's combine of the tasks' partial rows: several integer keys grouped as one
packed integer give exactly the groups (NULLs included) of grouping the key columns."""

from __future__ import annotations

import polars as pl
import pytest

from unbounded.runtime.stateful import aggregate
from unbounded.runtime.stateful.aggregate import AggregationFold, _packed_key

ROWS = pl.DataFrame(
    {"w": [5, 5, None, -3, 5, None, -3, 7],
     "k": [1, 1, 2, None, 1, 2, None, 2_000_000_000],
     "n": [1, 2, 3, 4, 5, 6, 7, 8]},
    schema={"w": pl.Int64, "k": pl.Int32, "n": pl.Int64})


def fold(order_sensitive: bool, combine: tuple[pl.Expr, ...]) -> AggregationFold:
    return AggregationFold(("w", "k"), combine, (), "update", None,
                           order_sensitive=order_sensitive)


def rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.rows(), key=repr)


@pytest.mark.parametrize("order_sensitive", [False, True])
def test_packed_keys_group_as_the_key_columns_do_nulls_included(
        order_sensitive: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate, "PACK_MIN_ROWS", 0)  # these rows count as many
    combine = (pl.col("n").first().alias("first"), pl.col("n").last().alias("last"),
               pl.col("n").sum().alias("sum"))
    got = fold(order_sensitive, combine)._combine(ROWS)
    want = ROWS.group_by("w", "k", maintain_order=True).agg(combine)
    assert got.schema == want.schema
    assert rows(got.select("w", "k", "sum")) == rows(want.select("w", "k", "sum"))
    if order_sensitive:  # first and last by row order, as the in-memory engine keeps it
        assert rows(got) == rows(want)


def test_keys_that_do_not_pack_are_grouped_as_columns() -> None:
    wide = pl.DataFrame({"w": [-(2**62), 2**62], "k": [0, 1]})
    assert _packed_key(wide, ["w", "k"]) is None
    assert _packed_key(pl.DataFrame({"w": [1], "k": ["a"]}), ["w", "k"]) is None
    assert _packed_key(pl.DataFrame({"w": [1]}), ["w"]) is None
    only_nulls = pl.DataFrame({"w": [None, None], "k": [1, 1]},
                              schema={"w": pl.Int64, "k": pl.Int64})
    packed = _packed_key(only_nulls, ["w", "k"])
    assert packed is not None
    out = only_nulls.group_by(packed[0]).agg().select(*packed[1])
    assert out.rows() == [(None, 1)]
