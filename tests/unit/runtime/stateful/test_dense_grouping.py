"""The dense grouping of a map side: over narrow integer key ranges it gives the rows the
hash grouping gives (NULL keys, NULL and NaN values, constant arguments, several keys),
in key order; wide ranges and other key types fall back. A large windowed count, sum and
avg of doubles takes it, with the late rows and event-time statistics of the fused path."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest

from unbounded.runtime.stateful import aggregate, dense_grouping
from unbounded.runtime.stateful.aggregate import MapSideAggregation
from unbounded.runtime.stateful.dense_grouping import (
    DenseBuffer,
    DenseKey,
    DenseKind,
    DensePlan,
    dense_partial,
)
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

__all__: list[str] = []

_S = 1_000_000
_BASE = 1_767_225_600 * _S  # 2026-01-01, epoch microseconds
_UTC = pl.Datetime("us", "UTC")
_ROWS = pl.Series(dtype=pl.get_index_type()).dtype
_BUFFERS = (DenseBuffer("c", DenseKind.ROWS, pl.Int64()),
            DenseBuffer("n", DenseKind.COUNT, pl.Int64(), pl.col("v")),
            DenseBuffer("s", DenseKind.SUM, pl.Float64(), pl.col("v")),
            DenseBuffer("ones", DenseKind.COUNT, pl.Int64(), pl.repeat(1, pl.len())),
            DenseBuffer("r", DenseKind.ROWS, _ROWS))
_WINDOW_AND_KEY = (DenseKey("w", pl.col("w"), 5 * _S), DenseKey("k", pl.col("k")))
_BY_K = DensePlan((DenseKey("k", pl.col("k")),), _BUFFERS)
_HASHED = (pl.len().cast(pl.Int64).alias("c"), pl.col("v").count().cast(pl.Int64).alias("n"),
           pl.col("v").sum().alias("s"), pl.repeat(1, pl.len()).count().cast(pl.Int64)
           .alias("ones"), pl.len().alias("r"))


def _frame(n: int, seed: int, key_dtype: type[pl.DataType] | pl.DataType = pl.Int64
           ) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    window = (rng.integers(0, 4, n) * 5 * _S + _BASE).astype(object)
    window[rng.random(n) < 0.05] = None
    key = rng.integers(-3, 40, n).astype(object)
    key[rng.random(n) < 0.05] = None
    value = (rng.integers(-800, 800, n) / 8).astype(object)
    value[rng.random(n) < 0.1] = None
    value[rng.random(n) < 0.01] = math.nan
    return pl.DataFrame({"w": window.tolist(), "k": key.tolist(), "v": value.tolist()},
                        schema={"w": pl.Int64, "k": key_dtype, "v": pl.Float64})


def _hashed(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.group_by(keys).agg(_HASHED).sort(keys, nulls_last=True)


@pytest.mark.parametrize("key_dtype", [pl.Int64(), pl.Int32(), pl.UInt8()])
def test_dense_rows_equal_the_hash_grouping_in_key_order(key_dtype: pl.DataType) -> None:
    frame = _frame(20_000, seed=3, key_dtype=key_dtype) if key_dtype != pl.UInt8() else \
        _frame(20_000, seed=3).with_columns(pl.col("k").abs().cast(pl.UInt8))
    got, _ = dense_partial(frame, DensePlan(_WINDOW_AND_KEY, _BUFFERS))
    assert got is not None
    want = _hashed(frame, ["w", "k"])
    assert got.schema == want.schema
    assert got.equals(want)  # eighths: the sums are exact in any order
    assert got.equals(got.sort(["w", "k"], nulls_last=True))


def test_dense_sums_add_each_group_in_row_order() -> None:
    frame = pl.DataFrame({"k": [1, 2, 1, 1], "v": [1e16, 5.0, 1.0, 1.0]})
    got, _ = dense_partial(frame, DensePlan((DenseKey("k", pl.col("k")),), (_BUFFERS[2],)))
    assert got is not None and got.get_column("s").to_list() == [(1e16 + 1.0) + 1.0, 5.0]


def test_only_null_keys_and_an_empty_frame_group_densely() -> None:
    frame = pl.DataFrame({"k": [None, None], "v": [1.0, None]}, schema={"k": pl.Int64,
                                                                      "v": pl.Float64})
    got, _ = dense_partial(frame, _BY_K)
    assert got is not None and got.rows() == [(None, 2, 1, 1.0, 2, 2)]
    empty, _ = dense_partial(frame.clear(), _BY_K)
    assert empty is not None and empty.height == 0 and empty.schema == got.schema


def test_a_constant_key_groups_every_row_as_one() -> None:
    frame = pl.DataFrame({"v": [1.0, None, 2.5]})
    plan = DensePlan((DenseKey("g", pl.lit(0, pl.Int8)),), _BUFFERS)
    got, _ = dense_partial(frame, plan)
    assert got is not None and got.rows() == [(0, 3, 2, 3.5, 3, 3)]
    assert got.schema["g"] == pl.Int8


def test_wide_ranges_and_other_key_types_fall_back() -> None:
    wide = pl.DataFrame({"k": [0, dense_grouping.max_slots(2)], "v": [1.0, 2.0]})
    assert dense_partial(wide, _BY_K)[0] is None
    extreme = pl.DataFrame({"k": [-(2**63), 2**63 - 1], "v": [1.0, 2.0]})
    assert dense_partial(extreme, _BY_K)[0] is None
    for column in (pl.Series("k", ["a", "b"]), pl.Series("k", [1.0, 2.0]),
                   pl.Series("k", [1, 2], pl.UInt64)):
        frame = pl.DataFrame([column, pl.Series("v", [1.0, 2.0])])
        assert dense_partial(frame, _BY_K)[0] is None


@pytest.mark.parametrize("offset", [0, 2 * _S, -3 * _S])
def test_window_keys_number_raw_times_to_their_window_starts(offset: int) -> None:
    rng = np.random.default_rng(7)
    times = rng.integers(-40 * _S, 40 * _S, 20_000).astype(object)
    times[rng.random(20_000) < 0.05] = None
    frame = pl.DataFrame({"t": times.tolist(), "k": rng.integers(0, 9, 20_000),
                          "v": rng.integers(-80, 80, 20_000) / 8},
                         schema={"t": pl.Int64, "k": pl.Int64, "v": pl.Float64})
    keys = (DenseKey("w", pl.col("t"), 5 * _S, offset), DenseKey("k", pl.col("k")))
    got, _ = dense_partial(frame, DensePlan(keys, _BUFFERS))
    start = (pl.col("t") - offset) // (5 * _S) * (5 * _S) + offset
    want = _hashed(frame.with_columns(start.alias("w")), ["w", "k"])
    assert got is not None and got.equals(want)


def test_keys_at_the_ends_of_int64_group_densely_or_fall_back_without_overflow() -> None:
    top = pl.DataFrame({"k": [2**63 - 1, None, 2**63 - 1], "v": [1.0, 2.0, 3.0]})
    got, _ = dense_partial(top, _BY_K)
    assert got is not None and got.select("k", "c", "s").rows() == [
        (2**63 - 1, 2, 4.0), (None, 1, 2.0)]
    for times, step in (([-(2**63), -(2**63) + 5], 10),  # the lowest window starts below
                        ([-(2**62), 2**62], 2**62)):  # offsets of 2**63 in three windows
        frame = pl.DataFrame({"t": times, "v": [1.0, 2.0]})
        plan = DensePlan((DenseKey("w", pl.col("t"), step),), _BUFFERS)
        assert dense_partial(frame, plan)[0] is None


@pytest.mark.parametrize("nulls", [False, True])
def test_the_time_summary_is_the_epoch_microseconds_min_max_sum_and_count(
        nulls: bool) -> None:
    rng = np.random.default_rng(13)
    us = rng.integers(-(2**62), 2**62, 5_000)  # the sum wraps Int64
    times = pl.concat([pl.Series("t", us[:2_000]), pl.Series("t", us[2_000:])],
                      rechunk=False).cast(_UTC)  # two chunks
    if nulls:
        times = times.scatter([3, 4_000], None)
    got = dense_grouping.time_summary(times)
    kept = times.drop_nulls().dt.epoch("us").to_list()
    assert (got.low, got.high, got.n) == (min(kept), max(kept), len(kept))
    assert (got.wrapped_sum - sum(kept)) % 2**64 == 0
    assert dense_grouping.time_summary(times.clear()) == (None, None, 0, 0)
    millis = times.cast(pl.Datetime("ms", "UTC"))  # other units go through Polars
    assert dense_grouping.time_summary(millis).n == len(kept)


def test_the_time_summary_comes_back_even_when_keys_fall_back() -> None:
    frame = _frame(1_000, seed=9).with_columns(pl.col("w").cast(_UTC).alias("t"))
    want = dense_grouping.time_summary(frame.get_column("t"))
    assert dense_partial(frame, _BY_K, "t")[1] == want
    text = frame.with_columns(pl.col("k").cast(pl.String))
    assert dense_partial(text, _BY_K, "t") == (None, want)


def test_a_window_key_numbers_a_timestamp_by_its_physical_values() -> None:
    frame = _frame(20_000, seed=3)
    keys = (DenseKey("w", pl.col("w").cast(_UTC).to_physical(), 5 * _S),
            DenseKey("k", pl.col("k")))
    got, _ = dense_partial(frame, DensePlan(keys, _BUFFERS))
    assert got is not None and got.equals(_hashed(frame, ["w", "k"]))
    # A timestamp key itself keeps the hash grouping, which keeps its type.
    plain = (DenseKey("w", pl.col("w").cast(_UTC)),)
    assert dense_partial(frame, DensePlan(plain, _BUFFERS))[0] is None


def test_kept_arrays_are_lent_to_one_call_at_a_time_and_results_own_their_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dense_grouping, "_kept", [])
    with dense_grouping._borrowed(1000, np.int64) as first, \
            dense_grouping._borrowed(1000, np.int64) as second:
        assert not np.shares_memory(first, second)
    with dense_grouping._borrowed(500, np.float64) as again:  # a kept one, not a fresh one
        assert np.shares_memory(again, first) or np.shares_memory(again, second)
    with dense_grouping._borrowed(4000, np.int64) as large:
        pass
    with dense_grouping._borrowed(10, np.int64) as small, \
            dense_grouping._borrowed(0, np.int64) as empty:
        assert not np.shares_memory(small, large)  # the smallest that fits
        assert empty.size == 0 and len(dense_grouping._kept) == 2  # took none
    plan = DensePlan(_WINDOW_AND_KEY, _BUFFERS)
    frames = [_frame(20_000, seed=s) for s in (11, 12)]
    got = [dense_partial(f, plan)[0] for f in frames]
    kept = [r.clone() for r in got if r is not None]
    for frame in frames:  # lend the same arrays again, with other rows in them
        dense_partial(frame.reverse(), plan)
    assert len(kept) == 2 and all(r.equals(k) for r, k in zip(got, kept, strict=True))
    assert kept[1].equals(_hashed(frames[1], ["w", "k"]))


def _map_side(dense: bool) -> MapSideAggregation:
    ts = pl.col("ts").dt.epoch("us")
    partial = (pl.len().cast(pl.Int64).alias("c"), pl.col("v").sum().alias("s"),
               pl.col("v").count().cast(pl.Int64).alias("n"))
    rows = DenseBuffer("__agg_rows", DenseKind.ROWS, _ROWS)
    keys = (DenseKey("window", pl.col("ts").to_physical(), 5 * _S), DenseKey("k", pl.col("k")))
    plan = DensePlan(keys, (_BUFFERS[0], _BUFFERS[2], _BUFFERS[1], rows)) if dense else None
    return MapSideAggregation(((ts - ts % (5 * _S)).alias("window"), pl.col("k")),
                              ("window", "k"), (), partial, (("window", 5 * _S),), "window",
                              ("w1", "ts"), num_partitions=3, dense=plan)


def test_the_dense_map_side_drops_and_counts_what_the_fused_one_does() -> None:
    n = 30_000
    frame = _frame(n, seed=5).select(
        (pl.col("w") + pl.int_range(n) % (5 * _S)).cast(_UTC).alias("ts"), "k", "v")
    for watermark in (0, _BASE + 10 * _S):
        fused = _map_side(dense=False).run(frame.lazy(), watermark, input_rows=n)
        dense = _map_side(dense=True).run(frame.lazy(), watermark, input_rows=n)
        assert dense.dropped_late == fused.dropped_late
        assert dense.event_time == fused.event_time
        assert dense.rows.schema == fused.rows.schema
        keys = ["window", "k"]
        assert dense.rows.sort(keys).equals(fused.rows.sort(keys))  # eighths: exact sums
        parts = dense.rows.get_column("__agg_partition")
        assert parts.equals(parts.sort())  # in partition order, for the driver's slices
    assert fused.dropped_late > 0


@pytest.fixture
def dense_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The rows of each frame the map side grouped densely."""
    seen: list[int] = []

    def recording(keyed: pl.DataFrame, *args: Any) -> Any:
        seen.append(keyed.height)
        return dense_partial(keyed, *args)

    monkeypatch.setattr(aggregate, "dense_partial", recording)
    yield seen


def test_a_large_windowed_count_sum_and_avg_of_doubles_groups_densely(
        spark: SparkSession, tmp_path: Any, dense_calls: list[int]) -> None:
    t0 = dt.datetime(2026, 1, 1, 10, 0, 0)
    n = aggregate.SMALL_MAP_SIDE_ROWS
    stream = MemoryStream("t TIMESTAMP, k LONG, v DOUBLE", spark)
    counts = (stream.toDF().withWatermark("t", "10 seconds")
              .groupBy(F.window("t", "5 seconds"), "k")
              .agg(F.count("*").alias("n"), F.sum("v").alias("s"), F.avg("v").alias("a")))
    out: list[Any] = []
    query = (counts.writeStream.outputMode("update")
             .foreachBatch(lambda d, _: out.extend(sorted(tuple(r) for r in d.collect())))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(t0 + dt.timedelta(milliseconds=i), i % 2, 0.5) for i in range(n)])
        query.processAllAvailable(60)
    finally:
        query.stop()
    assert dense_calls == [n]
    assert [(w.start, k, c, s, a) for w, k, c, s, a in out] == [
        (t0, 0, 2500, 1250.0, 0.5), (t0, 1, 2500, 1250.0, 0.5),
        (t0 + dt.timedelta(seconds=5), 0, 2500, 1250.0, 0.5),
        (t0 + dt.timedelta(seconds=5), 1, 2500, 1250.0, 0.5)]


def test_windows_with_an_offset_before_1970_group_densely_to_their_starts(
        spark: SparkSession, tmp_path: Any, dense_calls: list[int]) -> None:
    epoch = dt.datetime(1970, 1, 1)
    n = aggregate.SMALL_MAP_SIDE_ROWS
    times = [epoch + dt.timedelta(milliseconds=i - 7_001) for i in range(n)]
    stream = MemoryStream("t TIMESTAMP, k INT, v DOUBLE", spark)
    counts = (stream.toDF().withWatermark("t", "10 seconds")
              .groupBy(F.window("t", "5 seconds", startTime="2 seconds"), "k")
              .agg(F.count("*").alias("n"), F.avg("v").alias("a")))
    out: list[Any] = []
    query = (counts.writeStream.outputMode("update")
             .foreachBatch(lambda d, _: out.extend(tuple(r) for r in d.collect()))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(t, i % 3 - 1, None if i % 7 == 0 else 1.5) for i, t in
                        enumerate(times)])
        query.processAllAvailable(60)
    finally:
        query.stop()
    assert dense_calls == [n]
    want: dict[tuple[dt.datetime, int], int] = {}
    for i, t in enumerate(times):
        us = (t - epoch) // dt.timedelta(microseconds=1)
        start = epoch + dt.timedelta(microseconds=(us - 2 * _S) // (5 * _S) * 5 * _S + 2 * _S)
        want[start, i % 3 - 1] = want.get((start, i % 3 - 1), 0) + 1
    assert sorted((w.start, w.end - w.start, k, c, a) for w, k, c, a in out) == sorted(
        (s, dt.timedelta(seconds=5), k, c, 1.5) for (s, k), c in want.items())


def test_a_large_count_by_a_timestamp_column_keeps_the_key_a_timestamp(
        spark: SparkSession, tmp_path: Any) -> None:
    t0 = dt.datetime(2026, 1, 1, 10, 0, 0)
    n = aggregate.SMALL_MAP_SIDE_ROWS
    stream = MemoryStream("t TIMESTAMP, v DOUBLE", spark)
    counts = stream.toDF().groupBy("t").agg(F.count("*").alias("n"), F.sum("v").alias("s"))
    out: list[Any] = []
    query = (counts.writeStream.outputMode("update")
             .foreachBatch(lambda d, _: out.extend(tuple(r) for r in d.collect()))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        stream.addData([(t0 + dt.timedelta(seconds=i % 3), 0.5) for i in range(n)])
        query.processAllAvailable(60)
    finally:
        query.stop()
    assert sorted(out) == [(t0 + dt.timedelta(seconds=i), c, c / 2)
                           for i, c in enumerate((3334, 3333, 3333))]
