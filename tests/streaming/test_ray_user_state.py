"""User-defined state on Ray: applyInPandasWithState (event-time timeouts) and
transformWithStateInPandas (event-time timers) run their partitions' user calls, timers
and state writes in the state actors (the calls record the actor they ran in), give the
batch computation's rows exactly, survive a SIGKILLed state actor, and move their
checkpoint local -> ray -> local. Runs on the three-node cluster of ray_fixtures."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import polars as pl
import pytest

from ray_fixtures import (
    HAS_RAY,
    SKIP_REASON,
    append_events,
    kill_state_actor_once,
    output_stateful,
    ray_cluster_fixture,  # noqa: F401
    ray_cluster_module_fixture,  # noqa: F401
)
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.sql.streaming_state import (
    ExpiredTimerInfo,
    GroupState,
    GroupStateTimeout,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)

pytestmark = pytest.mark.skipif(not HAS_RAY, reason=SKIP_REASON)
# Ray's processes cannot import this module: the user code travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEY_IDS = 100  # key = id div 100: a key's events span ~50 s of event time, +-20 s
TIMEOUT_MS = 90_000  # after a key's last event: later than any of its rows can arrive
WATERMARK_MS = 30_000
OUTPUT = "key long, n long, total long, last_ms long"
KINDS = ["group_state", "transform"]


def _record(folder: str) -> None:
    """Leave ``<pid>-<actor id>`` in ``folder``: where this user call ran (the actor id
    is None on the driver and in tasks)."""
    import ray

    actor = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
    Path(folder, f"{os.getpid()}-{actor}").touch()


def _fold(n: int, total: int, last: int, frames: Iterator[pd.DataFrame]
          ) -> tuple[int, int, int]:
    for pdf in frames:
        n, total = n + len(pdf), total + int(pdf["id"].sum())
        last = max(last, int(pdf["t_ms"].max()))
    return n, total, last


def _row(key: Any, n: int, total: int, last: int) -> pd.DataFrame:
    return pd.DataFrame({"key": [int(key)], "n": [n], "total": [total], "last_ms": [last]})


def count_until_timeout(calls: str) -> Callable[..., Iterator[pd.DataFrame]]:
    """applyInPandasWithState: count a key's rows until the watermark passes its last
    event plus ``TIMEOUT_MS``, then emit (key, n, sum of ids, last event ms)."""

    def function(key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: GroupState
                 ) -> Iterator[pd.DataFrame]:
        _record(calls)
        if state.hasTimedOut:
            acc = state.get
            state.remove()
            yield _row(key[0], *acc)
            return
        acc = _fold(*(state.get if state.exists else (0, 0, 0)), frames)
        state.update(acc)
        state.setTimeoutTimestamp(acc[2] + TIMEOUT_MS)

    return function


class CountUntilTimer(StatefulProcessor):
    """transformWithStateInPandas: the same count, closed by an event-time timer."""

    def __init__(self, calls: str) -> None:
        self.calls = calls

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.acc = handle.getValueState("acc", "n long, total long, last long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        _record(self.calls)
        acc = _fold(*(self.acc.get() or (0, 0, 0)), rows)
        for timer in self.handle.listTimers():
            self.handle.deleteTimer(timer)
        self.handle.registerTimer(acc[2] + TIMEOUT_MS)
        self.acc.update(acc)
        return iter([])

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[pd.DataFrame]:
        _record(self.calls)
        acc = self.acc.get()
        self.acc.clear()
        yield _row(key[0], *acc)  # type: ignore[misc]


def _query(kind: str, spark: SparkSession, workdir: Path,
           probe: Callable[..., Any] | None) -> Any:
    calls = workdir / "calls"
    calls.mkdir(exist_ok=True)
    events = (spark.readStream.schema("id LONG, kind STRING, amount DOUBLE, ts STRING")
              .option("maxFilesPerTrigger", 2).json(str(workdir / "input")))
    if probe is not None:  # runs in the partition tasks; amount reaches the user call
        events = events.withColumn("amount", F.udf(probe, "double")("id", "amount"))
    timed = (events.withColumn("event_time", F.to_timestamp("ts"))
             .select(F.expr(f"id div {KEY_IDS}").alias("key"), "id", "amount", "event_time",
                     (F.col("event_time").cast("long") * 1000).alias("t_ms"))
             .withWatermark("event_time", f"{WATERMARK_MS // 1000} seconds").groupBy("key"))
    if kind == "group_state":
        out = timed.applyInPandasWithState(count_until_timeout(str(calls)), OUTPUT,
                                           "n long, total long, last long", "append",
                                           GroupStateTimeout.EventTimeTimeout)
    else:
        out = timed.transformWithStateInPandas(CountUntilTimer(str(calls)), OUTPUT, "Append",
                                               "EventTime")
    return (out.writeStream.outputMode("append").format("parquet")
            .option("checkpointLocation", str(workdir / "cp")).trigger(availableNow=True)
            .start(str(workdir / "out")))


def _run(kind: str, workdir: Path, master: str, probe: Callable[..., Any] | None = None
         ) -> None:
    spark = (SparkSession.builder.master(master)
             .config("spark.sql.shuffle.partitions", "2").create())
    try:
        _query(kind, spark, workdir, probe).awaitTermination(120)
    finally:
        spark.stop()


def _expected(kind: str, workdir: Path) -> list[tuple[Any, ...]]:
    """Each key whose last event plus ``TIMEOUT_MS`` the final watermark passed (a
    timeout strictly, a timer at or after it), as a batch computation over all files."""
    events = pl.read_ndjson(str(workdir / "input" / "*.json")).with_columns(
        (pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC")
         .dt.epoch("ms")).alias("t_ms"), (pl.col("id") // KEY_IDS).alias("key"))
    watermark = events["t_ms"].max() - WATERMARK_MS  # type: ignore[operator]
    keys = events.group_by("key").agg(pl.len().cast(pl.Int64).alias("n"),
                                      pl.col("id").sum().alias("total"),
                                      pl.col("t_ms").max().alias("last_ms"))
    due = pl.col("last_ms") + TIMEOUT_MS
    closed = keys.filter(due < watermark if kind == "group_state" else due <= watermark)
    return sorted(closed.select("key", "n", "total", "last_ms").iter_rows())


def _where_calls_ran(workdir: Path) -> set[tuple[int, str]]:
    return {(int(pid), actor) for pid, actor in
            (p.name.split("-", 1) for p in (workdir / "calls").iterdir())}


def _exits(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("kind", KINDS)
def test_user_state_calls_run_in_the_state_actors_and_equal_the_batch_result(
        ray_cluster, tmp_path, kind):
    append_events(tmp_path / "input", 0, 6)
    _run(kind, tmp_path, "ray")
    ran = _where_calls_ran(tmp_path)
    assert ran, "no user call was made"
    assert all(actor != "None" for _, actor in ran), f"user calls outside the actors: {ran}"
    assert os.getpid() not in {pid for pid, _ in ran}
    assert len({actor for _, actor in ran}) == 2  # one actor per state partition
    expected = _expected(kind, tmp_path)
    assert len(expected) >= 10
    assert output_stateful(tmp_path) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_user_state_actor_sigkilled_mid_run_is_restored_from_the_checkpoint(
        ray_cluster, tmp_path, kind):
    append_events(tmp_path / "input", 0, 8)
    marker = tmp_path / "actor"  # the operator's own actors: no other state in the query
    _run(kind, tmp_path, "ray", kill_state_actor_once(marker, from_id=1300))
    assert marker.exists(), "the probe found no state actor to kill"
    killed = int(marker.read_text())
    assert _exits(killed, timeout_s=30)
    ran = _where_calls_ran(tmp_path)
    assert killed in {pid for pid, _ in ran}, "the killed actor made no user call"
    assert len({pid for pid, _ in ran}) == 3  # two actors, one of them restarted
    assert output_stateful(tmp_path) == _expected(kind, tmp_path)


@pytest.mark.parametrize("kind", KINDS)
def test_user_state_moves_from_the_driver_to_actors_and_back(ray_cluster, tmp_path, kind):
    append_events(tmp_path / "input", 0, 3)
    _run(kind, tmp_path, "local[2]")
    local = _where_calls_ran(tmp_path)
    assert {actor for _, actor in local} == {"None"}
    append_events(tmp_path / "input", 3, 3)
    _run(kind, tmp_path, "ray")
    on_ray = _where_calls_ran(tmp_path) - local
    assert on_ray and all(actor != "None" for _, actor in on_ray)
    append_events(tmp_path / "input", 6, 3)
    _run(kind, tmp_path, "local[2]")
    assert output_stateful(tmp_path) == _expected(kind, tmp_path)
