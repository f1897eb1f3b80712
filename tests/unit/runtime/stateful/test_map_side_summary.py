"""The fused map side of a windowed aggregation: late rows are dropped and counted by
whole groups (lateness is a function of the window key), and the event-time statistics
come from a wrapping Int64 sum placed exactly from the batch's min and max."""

from __future__ import annotations

import polars as pl

from unbounded.runtime.stateful.aggregate import MapSideAggregation, _exact_sum

_S = 1_000_000
_BASE = 1_767_225_600 * _S  # 2026-01-01, epoch microseconds
_UTC = pl.Datetime("us", "UTC")


def _map_side() -> MapSideAggregation:
    ts = pl.col("ts").dt.epoch("us")
    start = (ts - ts % (5 * _S)).alias("window")
    return MapSideAggregation((start, pl.col("k")), ("window", "k"), (),
                              (pl.len().cast(pl.Int64).alias("c"),), (("window", 5 * _S),),
                              "window", ("w1", "ts"))


def _rows(times_us: list[int | None], keys: list[int]) -> pl.LazyFrame:
    return pl.DataFrame({"ts": times_us, "k": keys},
                        schema={"ts": pl.Int64, "k": pl.Int64}).with_columns(
        pl.col("ts").cast(_UTC)).lazy()


def test_late_groups_count_each_of_their_rows_and_null_times_are_dropped_not_late() -> None:
    times = [_BASE + s * _S for s in (0, 1, 2, 3, 6, 7, 11, 12)] + [None]
    keys = [1, 1, 1, 2, 1, 1, 1, 2, 1]
    out = _map_side().run(_rows(times, keys), _BASE + 10 * _S)  # windows [0,5) and [5,10) late
    assert out.dropped_late == 6
    got = sorted(out.rows.select("window", "k", "c").iter_rows())
    assert got == [(_BASE + 10 * _S, 1, 1), (_BASE + 10 * _S, 2, 1)]
    assert out.event_time is not None
    node, stats = out.event_time
    present = [t for t in times if t is not None]
    assert (node, stats.min_us, stats.max_us, stats.sum_us, stats.count) == (
        "w1", min(present), max(present), sum(present), len(present))
    on_time = _map_side().run(_rows(times, keys), _BASE)  # nothing late yet
    assert on_time.dropped_late == 0 and on_time.rows.height == 5  # the NULL time has none
    assert "__agg_rows" not in on_time.rows.columns


def test_event_time_sum_is_exact_where_int64_wraps_and_past_the_placeable_span() -> None:
    many = [_BASE + i for i in range(20_000)]  # the sum passes 2**63 about 5,000 times
    stats = _map_side().run(_rows(many, [0] * len(many)), 0).event_time
    assert stats is not None and stats[1].sum_us == sum(many)
    wide = [-(2**62), 2**62, 2**62 - 1, 2**62 - 2]  # count * span >= 2**64: summed again
    stats = _map_side().run(_rows(wide, [0] * 4), 0).event_time
    assert stats is not None and stats[1].sum_us == sum(wide)


def test_exact_sum_places_the_wrapped_sum_in_its_range_or_refuses() -> None:
    values = [2**62, 2**62 + 7, 2**62 + 3, -5 + 2**62]
    wrapped = (sum(values) + 2**63) % 2**64 - 2**63
    assert _exact_sum(wrapped, min(values), max(values), len(values)) == sum(values)
    assert _exact_sum(-10, -7, -1, 3) == -10
    assert _exact_sum(0, -(2**62), 2**62, 2) is None
