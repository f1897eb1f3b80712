"""The join's task stage: late rows dropped and counted, each row tagged with the state
partition its keys hash to, exactly as the operator routed rows before the stage moved
into the tasks (checkpoints keep their routing), and it pickles for other executors."""

from __future__ import annotations

import datetime as dt
import pickle

import polars as pl

from unbounded.runtime.stateful.base import partition_ids
from unbounded.runtime.stateful.join_map_side import PARTITION_COLUMN, JoinMapSide

_UTC = dt.UTC


def _side() -> JoinMapSide:
    return JoinMapSide(columns=("id", "t", "v"),
                       keys=(pl.col("id_r").cast(pl.Int64), pl.col("v")),
                       renames=(("id", "id_r"),), watermarked=("t",), num_partitions=4)


def _rows() -> pl.DataFrame:
    t0 = dt.datetime(2026, 1, 1, tzinfo=_UTC)
    return pl.DataFrame({
        "id": pl.Series([1, 2, 3, None, 5], dtype=pl.Int32),
        "t": [t0 + dt.timedelta(seconds=s) for s in (0, 10, 20, 30, 40)],
        "v": ["a", "b", None, "d", "e"],
        "extra": [0, 0, 0, 0, 0],
    })


def test_rows_are_tagged_with_the_partition_the_operator_routed_them_to() -> None:
    rows = _rows()
    out = _side().run(rows.lazy(), 0)
    keys = rows.select(pl.col("id").cast(pl.Int64).alias("__join_key0"),
                       pl.col("v").alias("__join_key1"))
    before = partition_ids(keys, ["__join_key0", "__join_key1"], 4)
    assert out.dropped_late == 0
    assert out.rows.columns == ["id", "t", "v", PARTITION_COLUMN]
    assert out.rows.get_column(PARTITION_COLUMN).to_list() == before.to_list()
    assert out.rows.drop(PARTITION_COLUMN).equals(rows.drop("extra"))


def test_rows_at_or_below_the_watermark_are_dropped_and_counted() -> None:
    watermark = dt.datetime(2026, 1, 1, 0, 0, 20, tzinfo=_UTC)
    out = _side().run(_rows().lazy(), int(watermark.timestamp() * 1_000_000))
    assert out.dropped_late == 3
    assert out.rows.get_column("id").to_list() == [None, 5]


def test_a_window_is_late_by_its_end() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=_UTC)
    windows = pl.DataFrame({"id": [1, 2], "w": [
        {"start": t0, "end": t0 + dt.timedelta(seconds=10)},
        {"start": t0 + dt.timedelta(seconds=10), "end": t0 + dt.timedelta(seconds=20)}]})
    side = JoinMapSide(("id", "w"), (pl.col("id"),), (), ("w",), 2)
    out = side.run(windows.lazy(), int((t0 + dt.timedelta(seconds=10)).timestamp() * 1e6))
    assert (out.dropped_late, out.rows.get_column("id").to_list()) == (1, [2])


def test_it_pickles_and_runs_the_same_after() -> None:
    side = _side()
    copy = pickle.loads(pickle.dumps(side))
    assert copy.run(_rows().lazy(), 0).rows.equals(side.run(_rows().lazy(), 0).rows)
