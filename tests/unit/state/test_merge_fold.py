"""``merge_fold`` of the memory store: the streaming aggregation's state path in one pass,
with exactly the effect of lookup + upsert + evict (state, delta file, metrics)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from state_files import delta_rows, sorted_rows
from unbounded.errors import AnalysisException
from unbounded.state import memory
from unbounded.state.base import (
    FOUND_COLUMN,
    OLD_SUFFIX,
    StateSchema,
    StateStoreId,
    SupportsMergeFold,
)
from unbounded.state.memory import MemoryStateStoreProvider

SCHEMA = StateSchema(
    key=pa.schema([("g", pa.large_string()), ("w", pa.int64())]),
    value=pa.schema([("n", pa.int64()), ("s", pa.float64())]),
)
_FOUND = pl.col(FOUND_COLUMN)
HASHABLE = memory._hashable  # before a test's monkeypatch replaces it
MERGE = [
    pl.when(_FOUND).then(pl.col(f"n{OLD_SUFFIX}") + pl.col("n")).otherwise(pl.col("n"))
    .alias("n"),
    pl.when(_FOUND).then(pl.col(f"s{OLD_SUFFIX}") + pl.col("s")).otherwise(pl.col("s"))
    .alias("s"),
]


@pytest.fixture(autouse=True, params=["full join", "hashed keys", "left and anti join",
                                      "hash collisions"])
def merge_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs over every merge path: small frames (one full join); large ones
    through key hashes; large ones with keys that do not hash (a left and an anti join);
    and large ones whose keys all share one hash, which must fall back to the joins."""
    if request.param != "full join":
        monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)
    if request.param == "left and anti join":
        monkeypatch.setattr(memory, "_hashable", lambda keys: False)
    if request.param == "hash collisions":
        monkeypatch.setattr(memory, "key_hashes",
                            lambda keys: pl.repeat(7, keys.height, dtype=pl.UInt64, eager=True))
    return str(request.param)


def rows_of(frame: pl.DataFrame | pa.Table) -> list[tuple[object, ...]]:
    return sorted_rows(frame, ["g", "w", "n", "s"])


def provider(root: Path, name: str = "a") -> MemoryStateStoreProvider:
    return MemoryStateStoreProvider(StateStoreId(str(root / name), 0, 0), SCHEMA)


def batch(g: list[str | None], w: list[int], n: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"g": g, "w": w, "n": n, "s": [float(x) for x in n]},
                        schema={"g": pl.String, "w": pl.Int64, "n": pl.Int64, "s": pl.Float64})


def fold_by_steps(store: object, rows: pl.DataFrame, evict: pl.Expr | None) -> None:
    """The reference: the contract's lookup, merge, upsert and evict."""
    keys = SCHEMA.key_names
    old = pl.from_arrow(store.lookup(rows.select(keys).to_arrow()))  # type: ignore[attr-defined]
    assert isinstance(old, pl.DataFrame)
    renamed = old.drop(keys).rename({"n": f"n{OLD_SUFFIX}", "s": f"s{OLD_SUFFIX}"})
    merged = pl.concat([rows, renamed], how="horizontal").select(*keys, *MERGE)
    store.upsert(merged.to_arrow(), distinct=True)  # type: ignore[attr-defined]
    if evict is not None:
        store.evict(evict)  # type: ignore[attr-defined]


BATCHES: list[tuple[pl.DataFrame, pl.Expr | None]] = [
    (batch(["a", "b", None], [0, 0, 5], [1, 2, 3]), None),
    (batch(["a", None, "c"], [0, 5, 10], [10, 20, 30]), pl.col("w") + 5 <= 0),
    (batch([], [], []), pl.col("w") + 5 <= 5),
    (batch(["c", "d"], [10, 15], [1, 1]), pl.col("n") > 30),  # reads a value column
]


def test_memory_store_supports_merge_fold(tmp_path: Path) -> None:
    assert isinstance(provider(tmp_path).get_store(0), SupportsMergeFold)


def test_merge_fold_matches_lookup_upsert_evict_in_state_delta_and_metrics(
        tmp_path: Path) -> None:
    fused, steps = provider(tmp_path, "fused"), provider(tmp_path, "steps")
    for version, (rows, evict) in enumerate(BATCHES):
        a, b = fused.get_store(version), steps.get_store(version)
        a.merge_fold(rows, MERGE, evict)
        fold_by_steps(b, rows, evict)
        assert rows_of(a.scan()) == rows_of(b.scan())
        same = ("numRowsTotal", "numRowsUpdated", "numRowsRemoved")
        assert [a.metrics.to_dict()[k] for k in same] == [b.metrics.to_dict()[k] for k in same]
        a.commit()
        b.commit()
        assert delta_rows(tmp_path, "fused", version + 1) == \
            delta_rows(tmp_path, "steps", version + 1)
    recovered = provider(tmp_path, "fused").get_store(len(BATCHES))
    assert rows_of(recovered.scan()) == [("d", 15, 1, 1.0), (None, 5, 23, 23.0)]


def test_merge_fold_returns_the_merged_and_the_evicted_rows(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.merge_fold(batch(["a", None], [0, 5], [1, 3]), MERGE, None)
    store.commit()
    fold = p.get_store(1).merge_fold(batch([None, "x"], [5, 10], [4, 1]), MERGE,
                                     pl.col("w") + 5 <= 5)
    assert rows_of(fold.merged) == [("x", 10, 1, 1.0), (None, 5, 7, 7.0)]
    assert rows_of(fold.evicted) == [("a", 0, 1, 1.0)]


def test_merge_fold_without_rows_only_evicts(tmp_path: Path) -> None:
    p = provider(tmp_path)
    store = p.get_store(0)
    store.merge_fold(batch(["a", "b"], [0, 5], [1, 3]), MERGE, None)
    store.commit()
    store = p.get_store(1)
    fold = store.merge_fold(batch([], [], []), MERGE, pl.col("w") <= 0)
    assert (fold.merged.height, rows_of(fold.evicted)) == (0, [("a", 0, 1, 1.0)])
    store.commit()
    assert delta_rows(tmp_path, "a", 2) == [{"g": "a", "w": 0, "n": None, "s": None,
                                              "__op": 1}]


def test_merge_fold_rejects_a_predicate_that_is_not_boolean(tmp_path: Path) -> None:
    store = provider(tmp_path).get_store(0)
    with pytest.raises(AnalysisException, match="not a boolean"):
        store.merge_fold(batch(["a"], [0], [1]), MERGE, pl.col("w") + 1)


def test_merge_fold_rejects_a_predicate_over_missing_columns(tmp_path: Path) -> None:
    store = provider(tmp_path).get_store(0)
    with pytest.raises(AnalysisException, match="cannot be evaluated"):
        store.merge_fold(batch(["a"], [0], [1]), MERGE, pl.col("nope") > 1)


def test_merge_fold_needs_a_merge_for_every_value_column(tmp_path: Path) -> None:
    store = provider(tmp_path).get_store(0)
    with pytest.raises(ValueError, match=r"\['s'\]"):
        store.merge_fold(batch(["a"], [0], [1]), MERGE[:1], None)


def test_merge_fold_conforms_rows_in_another_column_order(tmp_path: Path) -> None:
    store = provider(tmp_path).get_store(0)
    rows = batch(["a"], [0], [2]).select("s", "n", "w", "g") \
        .with_columns(pl.col("n").cast(pl.Int32))
    fold = store.merge_fold(rows, MERGE, None)
    assert fold.merged.columns == ["g", "w", "n", "s"]
    assert rows_of(store.scan()) == [("a", 0, 2, 2.0)]


def test_hashed_merge_pairs_equal_keys_and_refuses_colliding_hashes(
        merge_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    state = batch(["a", None, "b"], [0, 5, 5], [1, 2, 3])
    rows = batch([None, "c", "a"], [5, 0, 0], [10, 20, 30])
    out = memory._merge_hashed(state, rows, MERGE, SCHEMA)
    if merge_path == "hash collisions":
        assert out is None
        return
    assert out is not None
    (new_state, hashes), merged, evicted = out
    assert evicted is None
    assert hashes.to_list() == memory.key_hashes(new_state.select("g", "w")).to_list()
    assert rows_of(merged) == [("a", 0, 31, 31.0), ("c", 0, 20, 20.0), (None, 5, 12, 12.0)]
    assert rows_of(new_state) == [("a", 0, 31, 31.0), ("b", 5, 3, 3.0), ("c", 0, 20, 20.0),
                                  (None, 5, 12, 12.0)]


def test_hashed_merge_evicts_in_the_same_pass_as_merging_then_filtering(
        merge_path: str) -> None:
    """Merging with ``evict`` keeps and evicts exactly the rows, in the same order and
    with their hashes row for row, that filtering the merged state would: stored rows
    evicted untouched, a stored row replaced by a merged row that is evicted, merged
    rows that stay, and a batch that evicts nothing."""
    if merge_path == "hash collisions":
        return
    state = batch(["a", "b", None, "c", "d"], [0, 0, 5, 5, 10], [1, 2, 3, 4, 5])
    rows = batch(["b", None, "e", "d"], [0, 5, 10, 10], [10, 20, 30, 40])
    for evict in (pl.col("w") + 5 <= 5, pl.col("n") > 20, pl.col("w") < 0):
        out = memory._merge_hashed(state, rows, MERGE, SCHEMA, evict=evict)
        plain = memory._merge_hashed(state, rows, MERGE, SCHEMA)
        assert out is not None and plain is not None
        (kept, hashes), merged, evicted = out
        (whole, _), plain_merged, _ = plain
        mask = memory.eviction_mask(whole, evict)
        assert evicted is not None
        assert kept.rows() == whole.filter(~mask).rows()
        assert evicted.rows() == whole.filter(mask).rows()
        assert merged.rows() == plain_merged.rows()
        assert hashes.to_list() == memory.key_hashes(kept.select("g", "w")).to_list()


def test_only_keys_that_hash_like_they_compare_take_the_hashed_merge() -> None:
    assert HASHABLE(pl.DataFrame({"g": ["a"], "w": [1], "d": [True]}))
    assert not HASHABLE(pl.DataFrame({"g": ["a"], "x": [0.0]}))
    assert not HASHABLE(pl.DataFrame({"l": [[1]]}))


def test_merge_fold_keeps_the_key_hashes_of_the_state_it_commits(
        tmp_path: Path, merge_path: str) -> None:
    """A version's key hashes stay in memory with it, row for row with its frame after
    merges and evictions, so the next batch hashes only its own keys."""
    p = provider(tmp_path)
    for version, (rows, evict) in enumerate(BATCHES):
        store = p.get_store(version)
        store.merge_fold(rows, MERGE, evict)
        store.commit()
        keyed = p.keyed(version + 1)
        if merge_path == "hashed keys":
            assert keyed is not None
        if keyed is not None:
            frame = pl.from_arrow(p.get_store(version + 1).scan())
            assert isinstance(frame, pl.DataFrame)
            assert keyed.frame.equals(frame)
            assert keyed.hashes.to_list() == \
                memory.key_hashes(keyed.frame.select("g", "w")).to_list()


def test_the_next_batch_hashes_only_its_own_keys(
        tmp_path: Path, merge_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if merge_path != "hashed keys":
        return
    hashed: list[int] = []
    real = memory.key_hashes
    monkeypatch.setattr(memory, "key_hashes", lambda keys: hashed.append(keys.height) or
                        real(keys))
    p = provider(tmp_path)
    for version, (rows, evict) in enumerate(BATCHES):
        store = p.get_store(version)
        store.merge_fold(rows, MERGE, evict)
        store.commit()
    # Each batch's rows once, and the empty first state; never the stored rows again.
    assert hashed == [0, 3, 3, 2]


def test_state_merged_batch_after_batch_stays_in_few_chunks(
        tmp_path: Path, merge_path: str) -> None:
    """Each large merge appends a chunk; past MAX_STATE_CHUNKS the state is rechunked,
    its key hashes with it, so a long-running query does not slow down chunk by chunk."""
    p = provider(tmp_path)
    batches = 3 * memory.MAX_STATE_CHUNKS
    for version in range(batches):
        store = p.get_store(version)
        store.merge_fold(batch(["k"], [version], [1]), MERGE, pl.col("w") + 3 <= version)
        assert store._frame.n_chunks() <= memory.MAX_STATE_CHUNKS
        store.commit()
    final = p.get_store(batches)
    assert sorted(final._frame.get_column("w").to_list()) == list(range(batches - 3, batches))
    keyed = p.keyed(batches)
    if merge_path == "hashed keys":
        assert keyed is not None
        assert keyed.hashes.n_chunks() <= memory.MAX_STATE_CHUNKS
        assert keyed.hashes.to_list() == memory.key_hashes(keyed.frame.select("g", "w")).to_list()


def test_a_batch_probes_only_the_stored_keys_within_its_window_range() -> None:
    """Stored windows outside the batch's range cannot hold its keys; a NULL window in
    the batch also probes the stored NULL windows; a range that leaves out fewer than
    half the stored rows probes them all."""
    stored = pl.DataFrame({"g": ["a", "b", "c", "d", "e", "f"], "w": [0, 0, 5, 10, None, 0]})
    assert memory._near(stored, pl.DataFrame({"g": ["a"], "w": [5]})).to_list() == [
        False, False, True, False, False, False]
    assert memory._near(stored, pl.DataFrame({"g": ["a", "b"], "w": [5, None]})).to_list() \
        == [False, False, True, False, True, False]
    only_null = pl.DataFrame({"g": ["a"], "w": [None]}, schema={"g": pl.String, "w": pl.Int64})
    assert memory._near(stored, only_null).to_list() == [
        False, False, False, False, True, False]
    assert memory._near(stored, pl.DataFrame({"g": ["a", "b"], "w": [0, 5]})) is None


def test_the_hashed_merge_finds_stored_keys_within_the_range_and_null_windows(
        tmp_path: Path, merge_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "NEAR_MIN_ROWS", 0)  # probe only the near stored rows
    p = provider(tmp_path)
    store = p.get_store(0)
    store.merge_fold(batch(["a", "b", "c", "d", "e", "a"], [0, 0, 0, 5, 10, None],
                           [1, 1, 1, 1, 1, 1]), MERGE, None)
    store.commit()
    fold = p.get_store(1).merge_fold(batch(["d", "x", "a"], [5, 5, None], [2, 2, 2]),
                                     MERGE, None)
    assert rows_of(fold.merged) == rows_of(batch(["d", "x", "a"], [5, 5, None], [3, 2, 3]))
