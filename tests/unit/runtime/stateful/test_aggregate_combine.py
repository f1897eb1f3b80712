"""A state partition's combine of the tasks' partial rows runs on Polars' in-memory
engine below ``_STREAMING_COMBINE_ROWS`` rows and on its streaming engine above; both
give the same rows per key, so the engine a batch takes (decided by its row count
alone, the same when the batch is re-run) never changes its state."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from unbounded.runtime.stateful import aggregate
from unbounded.runtime.stateful.aggregate import AggregationFold

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
    return FOLD._combine(partials).sort("window", "key")


@pytest.mark.parametrize("rows", [2, 3_000, 70_000])
def test_in_memory_and_streaming_combines_give_the_same_rows(
        monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    partials = _partials(rows)
    in_memory = _combined(monkeypatch, partials, rows + 1)
    streaming = _combined(monkeypatch, partials, 0)
    assert in_memory.equals(streaming)
    assert in_memory.height == partials.select("window", "key").n_unique()

