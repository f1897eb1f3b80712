"""Streaming joins: stream-stream (state, eviction, outer rows) and stream-static, with
exact rows per batch, restarts, and the combinations Spark rejects.

The stream-stream cases are the ad-impressions/clicks join of Spark's guide: clicks
within an hour of their impression, watermarks of 2 and 3 hours. Times are minutes
after T0. With that condition Spark evicts an impression once its time is at or below
W - 60 min - 1 ms and a click at or below W - 1 ms (W: the query's watermark).
"""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.errors import UnsupportedOperationException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
N = None


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


class Batches:
    """A foreachBatch sink that keeps each batch's rows, sorted, by batch id."""

    def __init__(self) -> None:
        self.by_id: dict[int, list[tuple]] = {}

    def __call__(self, df, batch_id: int) -> None:
        self.by_id[batch_id] = sorted((tuple(r) for r in df.collect()), key=repr)

    def rows(self) -> list[tuple]:
        return sorted((r for rows in self.by_id.values() for r in rows), key=repr)


class Steps:
    """Feeds a query step by step; what each step emitted (its data batch and the
    no-data batches the moved watermark runs right after it) and its progress."""

    def __init__(self, query, sink: Batches) -> None:
        self.query, self.sink = query, sink
        self.emitted: list[list[tuple]] = []
        self.progress: list[list[dict]] = []

    def step(self, *feeds) -> None:
        seen_ids, seen_progress = set(self.sink.by_id), len(self.query.recentProgress)
        for stream, rows in feeds:
            if rows:
                stream.addData(rows)
        self.query.processAllAvailable(30)
        new = [i for i in sorted(self.sink.by_id) if i not in seen_ids]
        self.emitted.append(sorted((r for i in new for r in self.sink.by_id[i]), key=repr))
        self.progress.append(list(self.query.recentProgress)[seen_progress:])


def _ads(spark):
    imp = MemoryStream("adId INT, impressionTime TIMESTAMP", spark)
    clk = MemoryStream("clickAdId INT, clickTime TIMESTAMP", spark)
    impressions = imp.toDF().withWatermark("impressionTime", "2 hours")
    clicks = clk.toDF().withWatermark("clickTime", "3 hours")
    return imp, clk, impressions, clicks


CONDITION = ("clickAdId = adId AND clickTime >= impressionTime AND "
             "clickTime <= impressionTime + interval 1 hour")

# What each batch adds: (impressions, clicks). After batch 2 the watermark is 150 min
# (min(300 - 120, 330 - 180)), so batch 3 runs without data and evicts; batch 4's click
# at 120 min is late.
FEED = [
    ([(1, at(0)), (2, at(10)), (3, at(20))], []),
    ([], [(1, at(30)), (2, at(100))]),
    ([(4, at(300))], [(1, at(40)), (3, at(50)), (4, at(330))]),
    ([(5, at(400))], [(2, at(120))]),
]


def _run_ads(spark, tmp_path, how, feed=FEED, checkpoint=None, sink=None) -> Steps:
    imp, clk, impressions, clicks = _ads(spark)
    joined = impressions.join(clicks, F.expr(CONDITION), how)
    sink = sink or Batches()
    q = (joined.writeStream.foreachBatch(sink)
         .option("checkpointLocation", str(checkpoint or tmp_path / "cp")).start())
    steps = Steps(q, sink)
    try:
        for imps, clks in feed:
            steps.step((imp, imps), (clk, clks))
    finally:
        q.stop()
    return steps


def _metric(progress: list[dict], name: str) -> list[int]:
    return [p["stateOperators"][0][name] for p in progress]


MATCHES = [[], [(1, at(0), 1, at(30))],
           [(1, at(0), 1, at(40)), (3, at(20), 3, at(50)), (4, at(300), 4, at(330))], []]


def test_stream_stream_inner_join_emits_each_match_once_and_evicts_by_watermark(
        spark, tmp_path):
    steps = _run_ads(spark, tmp_path, "inner")
    assert steps.emitted == MATCHES
    rows = [_metric(p, "numRowsTotal") for p in steps.progress]
    # Step 2's batch holds impressions 1-4 and clicks 1, 2, 1, 3, 4; the watermark then
    # moves to 150 min and a batch without data evicts all but impression 4 and click 4.
    assert max(rows[2]) == 9
    assert rows[2][-1] == 2
    assert rows[3][-1] == 3  # + impression 5; the click at 120 min was late
    assert sum(_metric(steps.progress[3], "numRowsDroppedByWatermark")) == 1


def test_left_outer_join_emits_an_unmatched_impression_once_it_can_no_longer_match(
        spark, tmp_path):
    steps = _run_ads(spark, tmp_path, "left_outer")
    expected = [list(m) for m in MATCHES]
    expected[2] = sorted([*MATCHES[2], (2, at(10), N, N)], key=repr)
    assert steps.emitted == expected


def test_right_outer_join_emits_an_unmatched_click_padded_on_the_left(spark, tmp_path):
    steps = _run_ads(spark, tmp_path, "rightouter")
    assert steps.emitted[2] == sorted([*MATCHES[2], (N, N, 2, at(100))], key=repr)
    assert steps.emitted[3] == []


def test_full_outer_join_emits_both_sides_unmatched_rows(spark, tmp_path):
    steps = _run_ads(spark, tmp_path, "full")
    assert steps.emitted[:2] == MATCHES[:2]
    assert steps.emitted[2] == sorted(
        [*MATCHES[2], (2, at(10), N, N), (N, N, 2, at(100))], key=repr)


def test_left_semi_join_emits_a_left_row_once_however_many_rows_match(spark, tmp_path):
    steps = _run_ads(spark, tmp_path, "left_semi")
    # The second click on ad 1 (step 2) adds nothing: impression 1 was emitted already.
    assert steps.emitted == [[], [(1, at(0))], [(3, at(20)), (4, at(300))], []]


def test_join_state_survives_a_restart(spark, tmp_path):
    checkpoint = tmp_path / "cp"
    first = _run_ads(spark, tmp_path, "left_outer", FEED[:2], checkpoint)
    assert first.emitted == MATCHES[:2]
    # A new run reads new streams from offset 0: replay the first steps' data first.
    imp, clk, impressions, clicks = _ads(spark)
    imp.addData(FEED[0][0])
    clk.addData(FEED[1][1])
    joined = impressions.join(clicks, F.expr(CONDITION), "left_outer")
    sink = Batches()
    q = (joined.writeStream.foreachBatch(sink)
         .option("checkpointLocation", str(checkpoint)).start())
    steps = Steps(q, sink)
    try:
        steps.step((imp, []))
        steps.step((imp, FEED[2][0]), (clk, FEED[2][1]))
    finally:
        q.stop()
    assert steps.emitted[0] == []  # nothing new: the replayed rows were committed
    # The click on ad 3 matches impression 3, stored before the restart.
    assert steps.emitted[1] == sorted([*MATCHES[2], (2, at(10), N, N)], key=repr)
    assert sorted(os.listdir(checkpoint / "state" / "0" / "0")) == ["left", "right"]


def test_stream_stream_inner_join_without_watermarks_equals_the_batch_join(
        spark, tmp_path):
    left = MemoryStream("k INT, a STRING", spark)
    right = MemoryStream("k INT, b STRING", spark)
    lrows = [(i % 7, f"a{i}") for i in range(40)] + [(None, "anull")]
    rrows = [(i % 5, f"b{i}") for i in range(30)] + [(None, "bnull")]
    joined = left.toDF().join(right.toDF(), "k")
    sink = Batches()
    q = (joined.writeStream.foreachBatch(sink)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        for k in range(5):
            left.addData(lrows[k * 10:(k + 1) * 10])
            right.addData(rrows[k * 8:(k + 1) * 8])
            q.processAllAvailable(30)
    finally:
        q.stop()
    streamed = sorted((r for rows in sink.by_id.values() for r in rows), key=repr)
    batch = spark.createDataFrame(lrows, "k INT, a STRING").join(
        spark.createDataFrame(rrows, "k INT, b STRING"), "k")
    assert joined.columns == ["k", "a", "b"]
    assert streamed == sorted((tuple(r) for r in batch.collect()), key=repr)
    assert len(streamed) == sum(1 for lk, _ in lrows for rk, _ in rrows
                                if lk is not None and lk == rk)


def test_a_join_feeds_a_windowed_aggregation(spark, tmp_path):
    imp, clk, impressions, clicks = _ads(spark)
    counts = (impressions.join(clicks, F.expr(CONDITION))
              .groupBy(F.window("impressionTime", "1 hour")).count())
    sink = Batches()
    q = (counts.writeStream.outputMode("append").foreachBatch(sink)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        for imps, clks in FEED[:3]:
            if imps:
                imp.addData(imps)
            if clks:
                clk.addData(clks)
            q.processAllAvailable(30)
    finally:
        q.stop()
    # Window [10:00, 11:00) holds the three matches of impressions 1 and 3 and closes
    # once the watermark (150 min) passes its end.
    assert [(r[0].start, r[0].end, r[1]) for r in sink.rows()] == [(at(0), at(60), 3)]


def _static(spark, folder, rows):
    os.makedirs(folder, exist_ok=True)
    name = f"part-{len(os.listdir(folder))}.parquet"
    pq.write_table(pa.table({"id": [r[0] for r in rows], "name": [r[1] for r in rows]},
                            schema=pa.schema([("id", pa.int32()), ("name", pa.string())])),
                   os.path.join(folder, name))


def test_stream_static_joins_see_a_changed_static_folder_in_the_next_batch(spark, tmp_path):
    folder = str(tmp_path / "dim")
    _static(spark, folder, [(1, "one"), (2, "two")])
    events = MemoryStream("id INT, v INT", spark)
    static = spark.read.parquet(folder)
    inner = Batches()
    outer = Batches()
    qi = (events.toDF().join(static, "id").writeStream.foreachBatch(inner)
          .option("checkpointLocation", str(tmp_path / "cpi")).start())
    qo = (events.toDF().join(static, "id", "left_outer").writeStream.foreachBatch(outer)
          .option("checkpointLocation", str(tmp_path / "cpo")).start())
    try:
        events.addData([(1, 10), (3, 30)])
        qi.processAllAvailable(30)
        qo.processAllAvailable(30)
        _static(spark, folder, [(3, "three")])
        events.addData([(3, 31)])
        qi.processAllAvailable(30)
        qo.processAllAvailable(30)
    finally:
        qi.stop()
        qo.stop()
    assert inner.by_id[0] == [(1, 10, "one")]
    assert inner.by_id[1] == [(3, 31, "three")]
    assert outer.by_id[0] == [(1, 10, "one"), (3, 30, N)]
    assert outer.by_id[1] == [(3, 31, "three")]


@pytest.mark.parametrize(("how", "stream_left", "message"), [
    ("right_outer", True, "RightOuter join with a streaming DataFrame/Dataset on the left"),
    ("left_outer", False, "LeftOuter join with a streaming DataFrame/Dataset on the right"),
    ("full_outer", True, "FullOuter joins with streaming DataFrames/Datasets on the left"),
    ("left_anti", False, "LeftAnti join with a streaming DataFrame/Dataset on the right"),
    ("left_semi", False, "LeftSemi join with a streaming DataFrame/Dataset on the right"),
])
def test_stream_static_joins_spark_rejects_fail_before_start(
        spark, tmp_path, how, stream_left, message):
    stream = MemoryStream("id INT, v INT", spark).toDF()
    static = spark.createDataFrame([(1, "x")], "id INT, name STRING")
    joined = stream.join(static, "id", how) if stream_left else static.join(stream, "id", how)
    with pytest.raises(UnsupportedOperationException, match=message):
        joined.writeStream.foreachBatch(Batches()).option(
            "checkpointLocation", str(tmp_path / "cp")).start()


def test_stream_stream_outer_join_without_watermarks_is_rejected(spark, tmp_path):
    left = MemoryStream("k INT, a INT", spark).toDF()
    right = MemoryStream("k INT, b INT", spark).toDF()
    with pytest.raises(UnsupportedOperationException,
                       match="Stream-stream LeftOuter join between two streaming") as raised:
        left.join(right, "k", "left").writeStream.foreachBatch(Batches()).option(
            "checkpointLocation", str(tmp_path / "cp")).start()
    assert raised.value.getErrorClass() == "_LEGACY_ERROR_TEMP_3102"  # Spark 4's


def test_stream_stream_join_without_an_equality_is_rejected(spark, tmp_path):
    left = MemoryStream("k INT, a INT", spark).toDF()
    right = MemoryStream("j INT, b INT", spark).toDF()
    with pytest.raises(UnsupportedOperationException,
                       match="Stream-stream join without equality predicate") as raised:
        left.join(right, F.col("a") < F.col("b")).writeStream.foreachBatch(
            Batches()).option("checkpointLocation", str(tmp_path / "cp")).start()
    assert raised.value.getErrorClass() == "_LEGACY_ERROR_TEMP_3102"
    assert not os.path.exists(tmp_path / "cp" / "state")  # refused before any store opened


def test_stream_stream_join_in_update_mode_is_rejected(spark, tmp_path):
    left = MemoryStream("k INT, a INT", spark).toDF()
    right = MemoryStream("k INT, b INT", spark).toDF()
    with pytest.raises(UnsupportedOperationException, match="only in Append output mode"):
        left.join(right, "k").writeStream.outputMode("update").foreachBatch(
            Batches()).option("checkpointLocation", str(tmp_path / "cp")).start()


def test_stream_static_semi_and_anti_joins_keep_or_drop_stream_rows(spark, tmp_path):
    events = MemoryStream("id INT, v INT", spark)
    static = spark.createDataFrame([(1, "one"), (1, "uno"), (2, "two")], "id INT, name STRING")
    semi, anti = Batches(), Batches()
    qs = (events.toDF().join(static, "id", "left_semi").writeStream.foreachBatch(semi)
          .option("checkpointLocation", str(tmp_path / "cps")).start())
    qa = (events.toDF().join(static, "id", "left_anti").writeStream.foreachBatch(anti)
          .option("checkpointLocation", str(tmp_path / "cpa")).start())
    try:
        events.addData([(1, 10), (3, 30), (None, 40)])
        qs.processAllAvailable(30)
        qa.processAllAvailable(30)
    finally:
        qs.stop()
        qa.stop()
    assert semi.rows() == [(1, 10)]  # once, though two static rows match
    assert anti.rows() == sorted([(3, 30), (N, 40)], key=repr)
