"""State actors on Ray with the checkpoint at an S3 URL (issue 13): the actors open the
state stores at the URL with the driver's store options (endpoint, credentials), which
this process set only in its own fsspec configuration, so an actor that did not receive
them could not reach moto's server. A windowed aggregation restarts with exact output,
and a state actor SIGKILLed mid-run is restored from the S3 checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pytest

from ray_fixtures import (
    HAS_RAY,
    SKIP_REASON,
    append_events,
    expected_windows,
    kill_state_actor_once,
    list_state_actors,
    output_windows,
    ray_cluster_fixture,  # noqa: F401
    ray_cluster_module_fixture,  # noqa: F401
)
from unbounded.sql import SparkSession
from unbounded.sql import functions as F

pytestmark = [pytest.mark.skipif(not HAS_RAY, reason=SKIP_REASON), pytest.mark.timeout(600)]


def _windowed(spark: SparkSession, workdir: Path, checkpoint: str, probe: Any) -> Any:
    """ray_fixtures' windowed counts with the checkpoint at ``checkpoint``."""
    events = (spark.readStream.schema("id LONG, kind STRING, amount DOUBLE, ts STRING")
              .option("maxFilesPerTrigger", 2).json(str(workdir / "input"))
              .withColumn("event_time", F.to_timestamp("ts"))
              .withColumn("amount", F.udf(probe, "double")("id", "amount")))
    counts = (events.withWatermark("event_time", "30 seconds")
              .groupBy(F.window("event_time", "1 minute"), "kind")
              .agg(F.count("*").alias("n"), F.sum("amount").alias("total")))
    return (counts.writeStream.outputMode("append").format("parquet")
            .option("checkpointLocation", checkpoint).trigger(availableNow=True)
            .start(str(workdir / "out")))


def _run(workdir: Path, checkpoint: str, probe: Any) -> None:
    spark = (SparkSession.builder.master("ray")
             .config("spark.sql.shuffle.partitions", "2").create())
    try:
        query = _windowed(spark, workdir, checkpoint, probe)
        query.awaitTermination(300)
        assert query.exception() is None, query.exception()
    finally:
        spark.stop()


def _state_files(checkpoint: str) -> set[str]:
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    return {p.rsplit("/", 1)[1] for p in fs.find(f"{checkpoint}/state/0")}


def test_state_actors_keep_a_windowed_aggregation_on_an_s3_checkpoint_across_a_restart(
        ray_cluster, tmp_path, s3_bucket):
    checkpoint = f"{s3_bucket}/cp"
    append_events(tmp_path / "input", 0, 4)
    marker = tmp_path / "actors"
    _run(tmp_path, checkpoint, list_state_actors(marker, from_id=700))
    assert marker.read_text().count("\n") == 1, "two state actors held the partitions"
    assert {"1.delta", "2.delta"} <= _state_files(checkpoint)

    append_events(tmp_path / "input", 4, 4)
    _run(tmp_path, checkpoint, list_state_actors(tmp_path / "again", from_id=1300))
    assert (tmp_path / "again").exists()
    expected = expected_windows(tmp_path)
    assert len(expected) > 20
    assert output_windows(tmp_path) == expected


def test_a_state_actor_killed_mid_run_on_an_s3_checkpoint_loses_and_duplicates_nothing(
        ray_cluster, tmp_path, s3_bucket):
    append_events(tmp_path / "input", 0, 8)
    marker = tmp_path / "actor"
    _run(tmp_path, f"{s3_bucket}/cp", kill_state_actor_once(marker, from_id=1300))
    assert marker.exists(), "the probe found no state actor to kill"
    assert output_windows(tmp_path) == expected_windows(tmp_path)
