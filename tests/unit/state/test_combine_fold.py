"""``combine_fold`` of the memory store: a batch's partial rows, several per key, grouped
with the stored rows of their keys in one pass, with exactly the effect of combining
them per key and then ``merge_fold`` (state, delta file, metrics, what it returns), for
integer keys; other keys are left to the caller."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from state_files import delta_rows, sorted_rows
from unbounded.state import memory
from unbounded.state.base import (
    FOUND_COLUMN,
    OLD_SUFFIX,
    StateSchema,
    StateStoreId,
    SupportsCombineFold,
)
from unbounded.state.memory import MemoryStateStoreProvider

SCHEMA = StateSchema(
    key=pa.schema([("w", pa.int64()), ("k", pa.int32())]),
    value=pa.schema([("n", pa.int64()), ("s", pa.float64())]),
)
_FOUND = pl.col(FOUND_COLUMN)
MERGE = [
    pl.when(_FOUND).then(pl.col(f"n{OLD_SUFFIX}") + pl.col("n")).otherwise(pl.col("n"))
    .alias("n"),
    pl.when(_FOUND).then(pl.col(f"s{OLD_SUFFIX}") + pl.col("s")).otherwise(pl.col("s"))
    .alias("s"),
]
COMBINE = [pl.col("n").sum().alias("n"), pl.col("s").sum().alias("s")]


@pytest.fixture(autouse=True, params=["all stored rows probed", "near stored rows probed"])
def probe(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)  # these frames count as large
    if request.param == "near stored rows probed":
        monkeypatch.setattr(memory, "NEAR_MIN_ROWS", 0)
    return str(request.param)


def rows_of(frame: pl.DataFrame | pa.Table) -> list[tuple[object, ...]]:
    return sorted_rows(frame, ["w", "k", "n", "s"])


def provider(root: Path, name: str) -> MemoryStateStoreProvider:
    return MemoryStateStoreProvider(StateStoreId(str(root / name), 0, 0), SCHEMA)


def batch(w: list[int], k: list[int], n: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"w": w, "k": k, "n": n, "s": [x / 8 for x in n]},
                        schema={"w": pl.Int64, "k": pl.Int32, "n": pl.Int64, "s": pl.Float64})


# Keys repeat within a batch; stored keys lie inside and outside the next batch's ranges
# (a window before, a key beyond); a merged row can be evicted in the batch that made it.
BATCHES: list[tuple[pl.DataFrame, pl.Expr | None]] = [
    (batch([0, 0, 5, 5, 0, -5], [1, 2, 1, 1, 1, 7], [1, 2, 3, 4, 5, 6]), None),
    (batch([5, 5, 10, 5, 10], [1, 3, 1, 1, 1], [10, 20, 30, 40, 50]), pl.col("w") + 5 <= 0),
    (batch([10, 10, 5, 15], [1, 2, 3, 900], [1, 1, 1, 1]), pl.col("w") + 5 <= 10),
    (batch([15, 15, 20], [900, 900, -4], [2, 2, 2]), pl.col("n") > 4),  # a value column
    (batch([20, 20], [-4, -4], [1, 1]), None),
]


def test_memory_store_supports_combine_fold(tmp_path: Path) -> None:
    assert isinstance(provider(tmp_path, "a").get_store(0), SupportsCombineFold)


def test_combine_fold_matches_combining_then_merge_fold_in_state_delta_and_metrics(
        tmp_path: Path) -> None:
    fused, steps = provider(tmp_path, "fused"), provider(tmp_path, "steps")
    for version, (rows, evict) in enumerate(BATCHES):
        a, b = fused.get_store(version), steps.get_store(version)
        got = a.combine_fold(rows, COMBINE, evict)
        assert got is not None
        want = b.merge_fold(rows.group_by("w", "k").agg(COMBINE), MERGE, evict)
        assert rows_of(got.merged) == rows_of(want.merged)
        assert rows_of(got.evicted) == rows_of(want.evicted)
        assert rows_of(a.scan()) == rows_of(b.scan())
        same = ("numRowsTotal", "numRowsUpdated", "numRowsRemoved")
        assert [a.metrics.to_dict()[k] for k in same] == [b.metrics.to_dict()[k] for k in same]
        a.commit()
        b.commit()
        assert delta_rows(tmp_path, "fused", version + 1) == \
            delta_rows(tmp_path, "steps", version + 1)
    recovered = provider(tmp_path, "fused").get_store(len(BATCHES))
    assert rows_of(recovered.scan()) == rows_of(steps.get_store(len(BATCHES)).scan())
    assert rows_of(recovered.scan()) == [(10, 2, 1, 0.125), (20, -4, 4, 0.5)]


def test_keys_that_do_not_pack_are_left_to_the_caller_unchanged(tmp_path: Path) -> None:
    """NULL keys in the batch, or non-integer keys: None, and the store is as before."""
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(batch([0], [1], [1]), MERGE, None)
    with_null = pl.DataFrame({"w": [0, None], "k": [1, 1], "n": [1, 1], "s": [1.0, 1.0]},
                             schema={"w": pl.Int64, "k": pl.Int32, "n": pl.Int64,
                                     "s": pl.Float64})
    assert store.combine_fold(with_null, COMBINE, None) is None
    assert rows_of(store.scan()) == [(0, 1, 1, 0.125)]
    assert memory.combine_rows(pl.DataFrame({"g": ["a"]}), pl.DataFrame({"g": ["a"]}),
                               [], ["g"]) is None
    wide = pl.DataFrame({"w": [-(2**62), 2**62], "k": [0, 1]})
    assert memory.combine_rows(wide, wide, [], ["w", "k"]) is None
    assert memory.combine_rows(wide, wide.clear(), [], ["w", "k"]) is None  # no ranges


def test_small_frames_are_left_to_the_merge(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", 2048)
    store = provider(tmp_path, "a").get_store(0)
    assert store.combine_fold(batch([0, 0], [1, 1], [1, 2]), COMBINE, None) is None
    assert store.scan().num_rows == 0
