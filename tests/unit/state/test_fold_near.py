"""``merge_fold`` with a ``RowCombine``: a large batch of several rows per key folded in
one grouping with the stored rows of its key range gives exactly the state, delta,
metrics and returned rows of combining the batch first and merging it into state."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from unbounded.state import memory
from unbounded.state.base import FOUND_COLUMN, OLD_SUFFIX, RowCombine, StateSchema, StateStoreId
from unbounded.state.memory import MemoryStateStoreProvider

SCHEMA = StateSchema(
    key=pa.schema([("w", pa.int64()), ("g", pa.large_string())]),
    value=pa.schema([("n", pa.int64()), ("s", pa.float64()), ("f", pa.int64())]),
)
_FOUND = pl.col(FOUND_COLUMN)
MERGE = [
    pl.when(_FOUND).then(pl.col(f"n{OLD_SUFFIX}") + pl.col("n")).otherwise(pl.col("n"))
    .alias("n"),
    pl.when(_FOUND).then(pl.col(f"s{OLD_SUFFIX}") + pl.col("s")).otherwise(pl.col("s"))
    .alias("s"),
    pl.when(_FOUND).then(pl.col(f"f{OLD_SUFFIX}")).otherwise(pl.col("f")).alias("f"),  # first
]
COMBINE = RowCombine((pl.col("n").sum(), pl.col("s").sum(), pl.col("f").first()),
                     keep_order=True)


def provider(root: Path, name: str) -> MemoryStateStoreProvider:
    return MemoryStateStoreProvider(StateStoreId(str(root / name), 0, 0), SCHEMA)


def batch(w: list[int | None], g: list[str | None], n: list[int],
          s: list[float] | None = None) -> pl.DataFrame:
    return pl.DataFrame({"w": w, "g": g, "n": n,
                         "s": s if s is not None else [float(x) for x in n], "f": n},
                        schema={"w": pl.Int64, "g": pl.String, "n": pl.Int64, "s": pl.Float64,
                                "f": pl.Int64})


def rows_of(frame: pl.DataFrame | pa.Table) -> list[tuple[object, ...]]:
    df = frame if isinstance(frame, pl.DataFrame) else pl.from_arrow(frame)
    assert isinstance(df, pl.DataFrame)
    return sorted(df.select("w", "g", "n", "s", "f").rows(), key=repr)


def delta_rows(root: Path, name: str, version: int) -> list[tuple[object, ...]]:
    files = memory.StateFileLog(StateStoreId(str(root / name), 0, 0), SCHEMA, 10)
    return sorted((tuple(r.values()) for r in files.read_delta(version).to_pylist()), key=repr)


# Three windows; each batch repeats keys, reaches back into a stored window, brings a
# NULL window and a NULL group, and leaves stored windows outside its range alone.
BATCHES: list[tuple[pl.DataFrame, pl.Expr | None]] = [
    (batch([0, 0, 5, 5, None, 0], ["a", "a", "b", None, "x", "c"], [1, 2, 3, 4, 5, 6]), None),
    (batch([5, 5, 10, 10, None, 5], [None, "b", "a", "a", "x", "b"], [7, 8, 9, 10, 11, 12]),
     None),
    (batch([10, 15, 15, 10], ["a", "a", "a", "d"], [1, 2, 3, 4]), pl.col("w") + 5 <= 5),
    (batch([], [], []), pl.col("w") + 5 <= 10),
]


@pytest.fixture(autouse=True)
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", 3)  # these batches count as large


def test_fold_near_matches_combine_then_merge_in_state_delta_metrics_and_rows(
        tmp_path: Path) -> None:
    near, steps = provider(tmp_path, "near"), provider(tmp_path, "steps")
    folds = []
    for version, (rows, evict) in enumerate(BATCHES):
        a, b = near.get_store(version), steps.get_store(version)
        got = a.merge_fold(rows, MERGE, evict, COMBINE)
        want = b.merge_fold(COMBINE.apply(rows, SCHEMA.key_names) if rows.height else rows,
                            MERGE, evict)
        folds.append(got)
        assert rows_of(got.merged) == rows_of(want.merged)
        assert rows_of(got.evicted) == rows_of(want.evicted)
        assert rows_of(a.scan()) == rows_of(b.scan())
        same = ("numRowsTotal", "numRowsUpdated", "numRowsRemoved")
        assert [a.metrics.to_dict()[k] for k in same] == [b.metrics.to_dict()[k] for k in same]
        a.commit()
        b.commit()
        assert delta_rows(tmp_path, "near", version + 1) == \
            delta_rows(tmp_path, "steps", version + 1)
    assert rows_of(folds[1].merged) == sorted([
        (5, "b", 23, 23.0, 3), (5, None, 11, 11.0, 4), (10, "a", 19, 19.0, 9),
        (None, "x", 16, 16.0, 5)], key=repr)
    recovered = provider(tmp_path, "near").get_store(len(BATCHES))
    assert rows_of(recovered.scan()) == rows_of(near.get_store(len(BATCHES)).scan())


def test_fold_near_takes_the_stored_rows_of_its_range(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second batch (windows 5-10) groups the stored rows of windows 5 and 10 only."""
    grouped: list[int] = []
    apply = RowCombine.apply

    def counting(self: RowCombine, rows: pl.DataFrame, *args: object) -> pl.DataFrame:
        grouped.append(rows.height)
        return apply(self, rows, *args)  # type: ignore[arg-type]

    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(batch([0, 0, 5, 5, 20], ["a", "b", "a", "c", "z"], [1, 1, 1, 1, 1]),
                     MERGE, None, COMBINE)
    store.commit()
    monkeypatch.setattr(RowCombine, "apply", counting)
    p.get_store(1).merge_fold(batch([5, 10, 10, 5], ["a", "a", "a", "b"], [1, 1, 1, 1]),
                              MERGE, None, COMBINE)
    assert grouped == [2 + 4]  # the window-5 stored rows and the batch's


def test_a_stored_row_the_batch_leaves_alone_keeps_its_bits(tmp_path: Path) -> None:
    """A float sum of -0.0 folded alone would become 0.0 without a delta entry."""
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(batch([0], ["a"], [1], [-0.0]), MERGE, None)
    store.commit()
    store = p.get_store(1)
    store.merge_fold(batch([0, 0, 0, 0], ["b", "b", "c", "c"], [1, 1, 1, 1]), MERGE, None,
                     COMBINE)
    kept = store.scan().to_pylist()
    assert [math.copysign(1.0, r["s"]) for r in kept if r["g"] == "a"] == [-1.0]


def test_a_wide_key_range_falls_back_to_combine_then_merge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "FOLD_NEAR_RATIO", 0)
    near, steps = provider(tmp_path, "near"), provider(tmp_path, "steps")
    for version, (rows, evict) in enumerate(BATCHES[:3]):
        a, b = near.get_store(version), steps.get_store(version)
        got = a.merge_fold(rows, MERGE, evict, COMBINE)
        want = b.merge_fold(COMBINE.apply(rows, SCHEMA.key_names), MERGE, evict)
        assert rows_of(got.merged) == rows_of(want.merged)
        assert rows_of(a.scan()) == rows_of(b.scan())
        a.commit()
        b.commit()
