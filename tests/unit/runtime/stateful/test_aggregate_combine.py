"""The fold's combine of the tasks' partial rows: several integer keys grouped as one
packed integer give exactly the groups (NULLs included) of grouping the key columns; and
the combine runs on Polars' in-memory engine below ``_STREAMING_COMBINE_ROWS`` rows and on
its streaming engine above, with the same rows per key, so the engine a batch takes
(decided by its row count alone, the same when the batch is re-run) never changes its
state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from unbounded.plan.expressions import AggregateCall
from unbounded.runtime.stateful import aggregate
from unbounded.runtime.stateful.aggregate import AggregationFold, _packed_key
from unbounded.state import memory
from unbounded.state.base import FOUND_COLUMN, OLD_SUFFIX, StateSchema, StateStoreId
from unbounded.state.memory import MemoryStateStore, MemoryStateStoreProvider

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


FOLD = AggregationFold(
    key_names=("window", "key"),
    combine=(pl.col("count").sum().alias("count"), pl.col("sum").sum().alias("sum"),
             pl.col("latest").max().alias("latest")),
    merges=(), output_mode="append", closing=None)


def _partials(rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return pl.DataFrame({
        "window": rng.integers(0, 20, rows) * 5_000_000,
        "key": rng.integers(0, 1000, rows),
        "count": rng.integers(1, 50, rows),
        "sum": rng.integers(0, 8000, rows) / 8.0,  # eighths: every sum is exact
        "latest": rng.integers(0, 10**12, rows),
    }).with_columns(pl.when(pl.col("key") % 97 == 0).then(None).otherwise(pl.col("sum"))
                    .alias("sum"))


def _combined(monkeypatch: pytest.MonkeyPatch, partials: pl.DataFrame,
              streaming_from: int) -> pl.DataFrame:
    monkeypatch.setattr(aggregate, "_STREAMING_COMBINE_ROWS", streaming_from)
    monkeypatch.setattr(aggregate, "PACK_MIN_ROWS", 1 << 40)  # the unpacked combine
    return FOLD._combine(partials).sort("window", "key")


@pytest.mark.parametrize("rows", [2, 3_000, 70_000])
def test_in_memory_and_streaming_combines_give_the_same_rows(
        monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    partials = _partials(rows)
    in_memory = _combined(monkeypatch, partials, rows + 1)
    streaming = _combined(monkeypatch, partials, 0)
    assert in_memory.equals(streaming)
    assert in_memory.height == partials.select("window", "key").n_unique()



def test_only_counts_and_sums_combine_partial_rows_with_stored_ones() -> None:
    """Their combine over a stored buffer row and the batch's rows is their merge of the
    stored buffers with the batch's rows combined; not so for ANSI sums (where an
    overflow is raised depends on the order of additions) nor the others."""
    b, args = ["b0", "b1", "b2"], [pl.col("v")]

    def plan(name: str, distinct: bool = False) -> bool:
        builder = aggregate._BUILDERS[name]
        return builder(name, b, args, AggregateCall(name, (), distinct)).combine_merges

    assert all(plan(n) for n in ("count", "sum", "avg", "mean", "count_if"))
    assert not any(plan(n) for n in ("min", "max", "first", "last", "collect_list",
                                     "collect_set", "stddev", "median"))
    assert not plan("count", distinct=True)
    assert not aggregate._checked_sum("s", b, args, AggregateCall("sum", (), False)) \
        .combine_merges


def _fold(combine_merges: bool, watermark_us: int) -> AggregationFold:
    found = pl.col(FOUND_COLUMN)
    merges = tuple(pl.when(found).then(pl.col(f"{c}{OLD_SUFFIX}") + pl.col(c))
                   .otherwise(pl.col(c)).alias(c) for c in ("count", "sum"))
    return AggregationFold(("window", "key"), FOLD.combine[:2], merges, "append",
                           ("window", 5_000_000, False), watermark_us=watermark_us,
                           combine_merges=combine_merges)


def test_a_fold_through_combine_fold_emits_and_keeps_what_combining_then_merging_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate, "PACK_MIN_ROWS", 0)
    monkeypatch.setattr(memory, "NEAR_MIN_ROWS", 0)
    schema = StateSchema(pa.schema([("window", pa.int64()), ("key", pa.int64())]),
                         pa.schema([("count", pa.int64()), ("sum", pa.float64())]))
    calls: list[int] = []
    real = MemoryStateStore.combine_fold
    monkeypatch.setattr(MemoryStateStore, "combine_fold", lambda self, rows, c, e:
                        calls.append(rows.height) or real(self, rows, c, e))
    partials = _partials(30_000).drop("latest").sort("window")
    stores = {flag: MemoryStateStoreProvider(StateStoreId(str(tmp_path / str(flag)), 0, 0),
                                             schema) for flag in (False, True)}
    for version, part in enumerate(partials.iter_slices(6_000)):
        watermark = int(part.get_column("window").min())  # closes the windows before
        emitted = {flag: _fold(flag, watermark)(p.get_store(version), part)
                   for flag, p in stores.items()}
        assert rows(emitted[True][0]) == rows(emitted[False][0])
        assert emitted[True][1]["numRowsTotal"] == emitted[False][1]["numRowsTotal"]
    assert len(calls) == 5
    last = [rows(pl.from_arrow(p.get_store(5).scan())) for p in stores.values()]
    assert last[0] == last[1]
