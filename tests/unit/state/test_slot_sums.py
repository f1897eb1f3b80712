"""Sums grouped through a slot array over the keys' range (``state/slot_sums.py``): the
same groups, sums and stored matches as Polars' hash grouping, whatever the unused
slots hold; the memory store's fold of a batch into its pieces takes it for sums."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from state_files import delta_rows, sorted_rows
from unbounded.state import memory, slot_sums
from unbounded.state.base import StateSchema, StateStoreId
from unbounded.state.memory import MemoryStateStoreProvider
from unbounded.state.slot_sums import sum_by_slots, sums_only

KEYS = ["w", "k", "d"]
TYPES = {"w": pl.Int64, "k": pl.Int32, "d": pl.Date, "n": pl.Int64, "s": pl.Float64}


def frame(rng: np.random.Generator, height: int, key_span: int) -> pl.DataFrame:
    s = rng.normal(size=height)
    return pl.DataFrame({
        "w": np.full(height, 10), "k": rng.integers(-key_span, key_span, height),
        "d": rng.integers(0, 3, height), "n": rng.integers(-9, 9, height),
        "s": np.where(rng.random(height) < 0.1, np.nan, s),
    }).with_columns(pl.col("s").fill_nan(None)).cast(TYPES)  # type: ignore[arg-type]


def expected(stored: pl.DataFrame, rows: pl.DataFrame) -> tuple[pl.DataFrame, list[int]]:
    """Stored rows of the batch's keys first, then the batch's rows, summed per key."""
    at = stored.with_row_index("at").join(rows.select(KEYS).unique(), on=KEYS, how="semi")
    both = pl.concat([at.drop("at"), rows])
    grouped = both.group_by(KEYS, maintain_order=True).agg(pl.col("n").sum(), pl.col("s").sum())
    return grouped, sorted(at.get_column("at").to_list())


def same_sums(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.schema == want.schema
    got, want = got.sort(KEYS), want.sort(KEYS)
    assert got.drop("s").equals(want.drop("s"))
    assert np.allclose(got.get_column("s").to_numpy(), want.get_column("s").to_numpy())


@pytest.fixture(params=["unused slots as allocated", "unused slots hold row numbers"])
def slots(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slots a batch row does not write may hold anything, even a row's number."""
    if request.param == "unused slots hold row numbers":
        rng = np.random.default_rng(7)
        monkeypatch.setattr(slot_sums, "_slot_array", lambda size: rng.integers(
            -3, 400, size).astype(np.int32))


@pytest.mark.usefixtures("slots")
@pytest.mark.parametrize("seed", range(6))
def test_the_groups_sums_and_stored_matches_are_those_of_hash_grouping(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = frame(rng, 300, 40)
    stored = frame(rng, 200, 60).unique(KEYS, keep="first", maintain_order=True)
    stored = stored.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None)
                                 .otherwise(pl.col("n")).alias("n"))  # NULL values sum as 0
    result = sum_by_slots(stored, rows, KEYS, constant=("w",))
    assert result is not None
    grouped, found, of_found = result
    want, want_found = expected(stored, rows)
    same_sums(grouped, want)
    assert found.tolist() == want_found
    assert grouped[of_found].select(KEYS).equals(stored[found].select(KEYS))


def test_sums_start_from_the_stored_value_then_add_the_batch_in_row_order() -> None:
    stored = pl.DataFrame({"k": [5], "s": [1e16]})
    rows = pl.DataFrame({"k": [5, 5, 5], "s": [1.0, 1.0, -1e16]})
    result = sum_by_slots(stored, rows, ["k"])
    assert result is not None
    assert result[0].rows() == [(5, (1e16 + 1.0 + 1.0) - 1e16)]


@pytest.mark.parametrize(("stored", "rows"), [
    (pl.DataFrame({"k": [1]}), pl.DataFrame({"k": [1, None]})),  # NULL key in the batch
    (pl.DataFrame({"k": [None]}), pl.DataFrame({"k": [1, 2]})),  # NULL key stored
    (pl.DataFrame({"k": ["a"]}), pl.DataFrame({"k": ["a", "b"]})),  # not integers
    (pl.DataFrame({"k": [1]}), pl.DataFrame({"k": [1, 10**6]})),  # too sparse a range
    (pl.DataFrame({"k": [1]}), pl.DataFrame({"k": [1, 2]}).clear()),  # no rows
])
def test_keys_that_do_not_index_slots_are_left_to_hash_grouping(
        stored: pl.DataFrame, rows: pl.DataFrame) -> None:
    n = pl.Series("n", [1] * rows.height, dtype=pl.Int64)
    assert sum_by_slots(stored.with_columns(n=pl.lit(1, pl.Int64)), rows.hstack([n]),
                        ["k"]) is None


@pytest.mark.parametrize("dtype", [pl.Int32, pl.Decimal(10, 2), pl.Float32])
def test_other_value_types_are_left_to_hash_grouping(dtype: pl.DataType) -> None:
    rows = pl.DataFrame({"k": [1, 1], "n": [1, 2]}, schema={"k": pl.Int64, "n": dtype})
    assert sum_by_slots(rows.head(1), rows, ["k"]) is None


def test_only_a_sum_of_each_value_column_counts_as_sums() -> None:
    assert sums_only([pl.col("s").sum().alias("s"), pl.col("n").sum().alias("n")], ["n", "s"])
    assert not sums_only([pl.col("n").sum().alias("n")], ["n", "s"])
    assert not sums_only([pl.col("n").max().alias("n"), pl.col("s").sum().alias("s")],
                         ["n", "s"])
    assert not sums_only([pl.col("s").sum().alias("n"), pl.col("s").sum().alias("s")],
                         ["n", "s"])


SCHEMA = StateSchema(
    key=pa.schema([("w", pa.timestamp("us")), ("k", pa.int64())]),
    value=pa.schema([("n", pa.int64()), ("s", pa.float64())]),
)
COMBINE = [pl.col("n").sum().alias("n"), pl.col("s").sum().alias("s")]


def window_batch(rng: np.random.Generator, windows: list[int], height: int) -> pl.DataFrame:
    start = dt.datetime(2026, 1, 1)
    return pl.DataFrame({
        "w": [start + dt.timedelta(seconds=5 * int(w)) for w in rng.choice(windows, height)],
        "k": rng.integers(0, 500, height), "n": rng.integers(0, 5, height),
        "s": rng.normal(size=height),
    }, schema={"w": pl.Datetime("us"), "k": pl.Int64, "n": pl.Int64, "s": pl.Float64})


@pytest.mark.usefixtures("slots")
def test_the_store_folds_sums_through_slots_with_the_state_and_files_of_hash_grouping(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches over several windows, in pieces; one store sums through slots (counted),
    the other through Polars' grouping: the same merged, evicted and stored rows."""
    monkeypatch.setattr(memory, "SMALL_MERGE_ROWS", -1)  # these frames count as large
    calls: list[int] = []
    real = slot_sums.sum_by_slots

    def counted(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(result is not None)
        return result

    rng = np.random.default_rng(3)
    by_slots, by_hash = (MemoryStateStoreProvider(StateStoreId(str(tmp_path / n), 0, 0),
                                                  SCHEMA) for n in ("slots", "hash"))
    for version, windows in enumerate([[0, 1], [1, 2, 3], [2, 3], [3, 4, 5], [5]]):
        rows = window_batch(rng, windows, 900)
        watermark = dt.datetime(2026, 1, 1) + dt.timedelta(seconds=5 * (windows[0] - 1))
        evict = pl.col("w").dt.offset_by("5s") <= watermark
        a, b = by_slots.get_store(version), by_hash.get_store(version)
        with monkeypatch.context() as m:
            m.setattr(slot_sums, "sum_by_slots", counted)
            got = a.combine_fold(rows, COMBINE, evict)
        with monkeypatch.context() as m:
            m.setattr(slot_sums, "sums_only", lambda *_: False)
            want = b.combine_fold(rows, COMBINE, evict)
        assert got is not None and want is not None
        for x, y in [(got.merged, want.merged), (got.evicted, want.evicted),
                     (a.scan(), b.scan())]:
            x_rows, y_rows = (sorted_rows(f, ["w", "k", "n", "s"]) for f in (x, y))
            assert [r[:3] for r in x_rows] == [r[:3] for r in y_rows]
            assert [r[3] for r in x_rows] == pytest.approx([r[3] for r in y_rows])
        a.commit()
        b.commit()
        assert len(delta_rows(tmp_path, "slots", version + 1)) == \
            len(delta_rows(tmp_path, "hash", version + 1))
    assert calls and all(calls)
