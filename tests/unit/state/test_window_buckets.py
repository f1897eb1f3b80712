"""The memory store splits a large state by the window column its eviction reads: a
batch probes and copies only the windows its rows fall in, a closed window leaves whole,
and the state, the delta files and the metrics are those of the flat fold."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from unbounded.state import memory
from unbounded.state.base import FOUND_COLUMN, OLD_SUFFIX, StateSchema, StateStoreId
from unbounded.state.files import StateFileEnvelope
from unbounded.state.memory import MemoryStateStoreProvider

SCHEMA = StateSchema(key=pa.schema([("w", pa.int64()), ("k", pa.int64())]),
                     value=pa.schema([("n", pa.int64())]))
_N = pl.col("n")
MERGE = [pl.when(pl.col(FOUND_COLUMN)).then(pl.col(f"n{OLD_SUFFIX}") + _N).otherwise(_N)
         .alias("n")]


def closes(watermark: int) -> pl.Expr:
    return pl.col("w") + 5 <= watermark


# (window, key, n) rows of each batch and the watermark that evicts after it.
BATCHES: list[tuple[list[tuple[int, int, int]], int]] = [
    ([(0, 1, 1), (0, 2, 1), (5, 1, 1)], 0),
    ([(0, 1, 10), (5, 2, 10), (10, 3, 10)], 0),
    ([(10, 3, 100), (10, 4, 100)], 5),  # window 0 closes; 5 is untouched
    ([], 15),  # no rows: windows 5 and 10 close
    ([(20, 1, 7)], 15),
]


@pytest.fixture(autouse=True)
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)  # every merge takes the large path


def provider(root: Path, name: str) -> MemoryStateStoreProvider:
    return MemoryStateStoreProvider(StateStoreId(str(root / name), 0, 0), SCHEMA)


def frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"w": pl.Int64, "k": pl.Int64, "n": pl.Int64},
                        orient="row")


def rows_of(data: pl.DataFrame | pa.Table) -> list[tuple[object, ...]]:
    table = data if isinstance(data, pa.Table) else data.to_arrow()
    return sorted(tuple(r.values()) for r in table.to_pylist())


def delta(root: Path, name: str, version: int) -> list[tuple[object, ...]]:
    path = root / name / "0" / "0" / f"{version}.delta"
    body = pa.py_buffer(path.read_bytes()[StateFileEnvelope.SIZE:])
    return sorted((tuple(r.values()) for r in pa.ipc.open_file(body).read_all().to_pylist()),
                  key=repr)


Folded = tuple[list[tuple[object, ...]], list[tuple[object, ...]], dict[str, int]]


def fold_all(p: MemoryStateStoreProvider) -> list[Folded]:
    """Each batch's (merged rows, evicted rows, metrics)."""
    out: list[Folded] = []
    for version, (rows, watermark) in enumerate(BATCHES):
        store = p.get_store(version)
        fold = store.merge_fold(frame(rows), MERGE, closes(watermark))
        metrics = store.metrics.to_dict()
        store.commit()
        out.append((rows_of(fold.merged), rows_of(fold.evicted),
                    {k: metrics[k] for k in ("numRowsTotal", "numRowsUpdated",
                                             "numRowsRemoved")}))
    return out


def test_split_fold_matches_the_flat_fold_in_rows_deltas_metrics_and_recovery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    split = fold_all(provider(tmp_path, "split"))
    monkeypatch.setattr(memory, "MAX_BUCKETS", 0)  # never split: the flat fold
    flat = fold_all(provider(tmp_path, "flat"))
    assert split == flat
    assert [e for _, e, _ in split] == [
        [], [], [(0, 1, 11), (0, 2, 1)], [(5, 1, 1), (5, 2, 10), (10, 3, 110), (10, 4, 100)],
        []]
    for version in range(1, len(BATCHES) + 1):
        assert delta(tmp_path, "split", version) == delta(tmp_path, "flat", version)
    recovered = provider(tmp_path, "split").get_store(len(BATCHES))
    assert rows_of(recovered.scan()) == [(20, 1, 7)]


def test_a_batch_probes_only_the_windows_its_rows_fall_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[int] = []
    real = memory._merge_hashed
    monkeypatch.setattr(memory, "_merge_hashed", lambda state, *a, **k: probed.append(
        state.height) or real(state, *a, **k))
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(frame([(0, k, 1) for k in range(5)] + [(5, 1, 1)]), MERGE, closes(0))
    store.commit()
    assert p.buckets(1) is not None
    probed.clear()
    fold = p.get_store(1).merge_fold(frame([(5, 1, 2), (5, 2, 2)]), MERGE, closes(0))
    assert probed == [1]  # window 5's one stored row; window 0's five are not probed
    assert rows_of(fold.merged) == [(5, 1, 3), (5, 2, 2)]


def test_a_closed_window_leaves_without_evaluating_the_predicate_per_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masked: list[int] = []
    real = memory.eviction_mask
    monkeypatch.setattr(memory, "eviction_mask", lambda f, e: masked.append(f.height) or
                        real(f, e))
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(frame([(0, k, 1) for k in range(100)] + [(5, 1, 1)]), MERGE, closes(0))
    store.commit()
    fold = p.get_store(1).merge_fold(frame([]), MERGE, closes(5))
    assert masked == [2, 2]  # one row per window, not 101 rows
    assert len(rows_of(fold.evicted)) == 100


def test_too_many_window_values_keep_the_flat_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "MAX_BUCKETS", 2)
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    store.merge_fold(frame([(0, 1, 1), (5, 1, 1), (10, 1, 1)]), MERGE, closes(0))
    store.commit()
    assert p.buckets(1) is None
    assert rows_of(p.get_store(1).scan()) == [(0, 1, 1), (5, 1, 1), (10, 1, 1)]


def test_an_eviction_reading_a_value_column_keeps_the_flat_state(tmp_path: Path) -> None:
    p = provider(tmp_path, "a")
    store = p.get_store(0)
    fold = store.merge_fold(frame([(0, 1, 1), (5, 1, 9)]), MERGE, (pl.col("w") < 0) | (_N > 5))
    store.commit()
    assert p.buckets(1) is None
    assert rows_of(fold.evicted) == [(5, 1, 9)]
