"""A streaming query whose checkpoint is an S3 URL (issue 13): it runs, restarts and
resumes with exact output; a second driver is refused; a damaged object is reported by
its URL. Against moto's S3 server on loopback, through s3fs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import polars as pl
import pytest

from s3_fixtures import fsspec_s3_env
from unbounded.errors import (
    CheckpointCorruptError,
    ConcurrentQueryError,
    StreamingQueryException,
)
from unbounded.sql import functions as F

pytestmark = pytest.mark.timeout(120)
JOB = os.path.join(os.path.dirname(__file__), "s3_driver_job.py")
LEASE_MS = 5000  # refreshed every 1.7 s: a loaded machine does not let it lapse by accident


def _write_input(folder: Path, index: int, rows: list[tuple[str, int]]) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / f"in-{index}.json"
    path.write_text("".join(json.dumps({"word": w, "n": n}) + "\n" for w, n in rows))
    os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))


def _start(spark, tmp_path: Path, checkpoint: str, trigger: dict | None = None):
    df = (spark.readStream.schema("word STRING, n INT").option("maxFilesPerTrigger", 1)
          .json(str(tmp_path / "in")).where("n > 0").selectExpr("word", "n * 10 AS n10"))
    return (df.writeStream.format("parquet").option("path", str(tmp_path / "out"))
            .option("checkpointLocation", checkpoint)
            .trigger(**(trigger or {"availableNow": True})).start())


def _output(tmp_path: Path, columns: tuple[str, ...] | list[str] = ("word", "n10")
            ) -> list[tuple]:
    files = list((tmp_path / "out").glob("*.parquet"))
    if not files:
        return []
    frame = pl.concat([pl.read_parquet(p) for p in files])
    return sorted(frame.select(*columns).iter_rows())


def _names(url: str) -> list[str]:
    """What is stored under ``url``, asked of the server (none: nothing yet)."""
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    try:
        return sorted(os.path.basename(p) for p in fs.ls(url, detail=False))
    except FileNotFoundError:
        return []


def _run(query) -> None:
    query.awaitTermination(60)
    assert query.exception() is None


def test_a_query_with_an_s3_checkpoint_restarts_and_resumes_with_exact_output(
        spark, tmp_path, s3_bucket):
    checkpoint = f"{s3_bucket}/queries/words"
    _write_input(tmp_path / "in", 0, [("a", 1), ("b", 0), ("c", 2)])
    _write_input(tmp_path / "in", 1, [("d", 3)])
    first = _start(spark, tmp_path, checkpoint)
    _run(first)
    assert _output(tmp_path) == [("a", 10), ("c", 20), ("d", 30)]
    assert _names(f"{checkpoint}/offsets") == [".0.crc32c", ".1.crc32c", ".crc32c-from",
                                               "0", "1"]
    assert _names(f"{checkpoint}/commits")[-2:] == ["0", "1"]
    assert {"metadata", "epochs", "leases", "sources"} <= set(_names(checkpoint))

    _write_input(tmp_path / "in", 2, [("e", 4), ("f", -1)])
    second = _start(spark, tmp_path, checkpoint)
    _run(second)
    assert second.id == first.id and second.runId != first.runId
    assert _output(tmp_path) == [("a", 10), ("c", 20), ("d", 30), ("e", 40)]
    assert [n for n in _names(f"{checkpoint}/offsets") if n.isdigit()] == ["0", "1", "2"]
    assert [n for n in _names(f"{checkpoint}/epochs") if n.isdigit()] == ["1"]
    assert _names(f"{checkpoint}/leases") == ["1"]


def test_a_second_driver_on_a_running_s3_checkpoint_is_refused(spark, tmp_path, s3_bucket):
    checkpoint = f"{s3_bucket}/cp"
    _write_input(tmp_path / "in", 0, [("a", 1)])
    running = _start(spark, tmp_path, checkpoint, {"processingTime": "1 second"})
    try:
        running.processAllAvailable()
        with pytest.raises(ConcurrentQueryError, match=r"holds the lease of the checkpoint "
                           rf"{checkpoint} for \d+\.\d s more"):
            _start(spark, tmp_path, checkpoint)
    finally:
        running.stop()
    again = _start(spark, tmp_path, checkpoint)  # the stop ended the lease
    _run(again)
    assert _output(tmp_path) == [("a", 10)]


def test_a_damaged_checkpoint_object_fails_the_restart_naming_its_url(
        spark, tmp_path, s3_bucket):
    checkpoint = f"{s3_bucket}/cp"
    _write_input(tmp_path / "in", 0, [("a", 1)])
    _write_input(tmp_path / "in", 1, [("b", 2)])
    _run(_start(spark, tmp_path, checkpoint))
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    damaged = f"{checkpoint}/offsets/1"
    data = bytearray(fs.cat_file(damaged))
    data[len(data) // 2] ^= 0x04
    fs.pipe_file(damaged, bytes(data))
    with pytest.raises((CheckpointCorruptError, StreamingQueryException)) as failed:
        _run(_start(spark, tmp_path, checkpoint))
    error = failed.value
    cause = error.cause if isinstance(error, StreamingQueryException) else error
    assert isinstance(cause, CheckpointCorruptError)
    assert f"Checkpoint file {damaged} is corrupt" in str(cause)
    assert "CRC-32C" in str(cause)


def _windowed(spark, tmp_path: Path, checkpoint: str, provider: str):
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    spark.conf.set("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", provider)
    df = (spark.readStream.schema("ts TIMESTAMP, word STRING")
          .option("maxFilesPerTrigger", 1).json(str(tmp_path / "in"))
          .withWatermark("ts", "5 minutes")
          .groupBy(F.window("ts", "5 minutes"), "word").count()
          .selectExpr("date_format(window.start, 'HH:mm') AS start", "word", "count"))
    return (df.writeStream.format("parquet").outputMode("append")
            .option("path", str(tmp_path / "out"))
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True).start())


def _write_events(folder: Path, index: int, rows: list[tuple[str, str]]) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / f"in-{index}.json"
    path.write_text("".join(json.dumps({"ts": f"2026-01-01T{t}:00", "word": w}) + "\n"
                            for t, w in rows))
    os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))


@pytest.mark.parametrize("provider", ["memory", "rocksdb"])
def test_a_windowed_aggregation_on_an_s3_checkpoint_keeps_its_state_across_a_restart(
        spark, tmp_path, s3_bucket, provider):
    """State deltas and snapshots go to S3: the window of 10:00 counts rows of both runs,
    so the second run reopened the first run's state from S3."""
    checkpoint = f"{s3_bucket}/cp"
    _write_events(tmp_path / "in", 0, [("10:01", "a"), ("10:02", "b")])
    _write_events(tmp_path / "in", 1, [("10:03", "a")])
    _run(_windowed(spark, tmp_path, checkpoint, provider))
    assert _output(tmp_path, ["start", "word", "count"]) == []  # watermark 09:58: all open
    kinds = {name.partition(".")[2] for name in _names(f"{checkpoint}/state/0/0")}
    assert {"delta", "snapshot"} <= kinds

    _write_events(tmp_path / "in", 2, [("10:04", "a"), ("10:16", "c")])
    _write_events(tmp_path / "in", 3, [("10:31", "a")])
    _run(_windowed(spark, tmp_path, checkpoint, provider))
    assert _output(tmp_path, ["start", "word", "count"]) == [
        ("10:00", "a", 3), ("10:00", "b", 1), ("10:15", "c", 1)]


def _lease_holder_pid(checkpoint: str) -> int | None:
    leases = _names(f"{checkpoint}/leases")
    if not leases:
        return None
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    body = fs.cat_file(f"{checkpoint}/leases/{leases[-1]}").decode().split("\n", 1)[1]
    return int(json.loads(body)["pid"])


def _wait_for(condition, seconds: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        said = f"; the child said: {log.read_text()[-2000:]}" if log else ""
        assert time.monotonic() < deadline, f"timed out waiting for {what}{said}"
        time.sleep(0.1)


def test_a_driver_in_another_process_is_fenced_off_until_its_lease_expires_after_a_kill(
        spark, tmp_path, s3_bucket, s3_server, python_env):
    """The lease works across processes (as across nodes): while a driver in a child
    process runs, this one is refused; after that driver is SIGKILLed (no clean stop:
    its lease stays), this one starts once the lease expired and resumes with every row
    exactly once."""
    checkpoint = f"{s3_bucket}/cp"
    _write_input(tmp_path / "in", 0, [("a", 1), ("b", 2)])
    env = {**python_env, **fsspec_s3_env(s3_server)}
    log = tmp_path / "child.log"
    with open(log, "wb") as err:
        child = subprocess.Popen(
            [sys.executable, JOB, str(tmp_path / "in"), str(tmp_path / "out"), checkpoint,
             str(LEASE_MS)], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait_for(lambda: _lease_holder_pid(checkpoint) == child.pid, 60, "its lease", log)
        _wait_for(lambda: "0" in _names(f"{checkpoint}/commits"), 60, "its commit", log)
        spark.conf.set("spark.unbounded.checkpoint.leaseTimeoutMs", str(LEASE_MS))
        with pytest.raises(ConcurrentQueryError, match=rf"pid {child.pid}\) holds the lease"):
            _start(spark, tmp_path, checkpoint)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    _write_input(tmp_path / "in", 1, [("c", 3)])
    started = []

    def try_start() -> bool:
        try:
            started.append(_start(spark, tmp_path, checkpoint))
        except ConcurrentQueryError:
            return False
        return True

    _wait_for(try_start, 4 * LEASE_MS / 1000, "the dead driver's lease to expire")
    _run(started[0])
    assert _output(tmp_path) == [("a", 10), ("b", 20), ("c", 30)]
    assert [n for n in _names(f"{checkpoint}/epochs") if n.isdigit()] == ["1"]
