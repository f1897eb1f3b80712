"""SIGKILL a stream-stream join (impressions from JSON files, clicks from Parquet files,
one file of each per batch, written by the Parquet file sink) at each batch step and at
random; after a last run the sink's committed rows are the batch join's, each once.

The input keeps to its watermarks: file k of either side holds event times in
[10k, 10k + 10) minutes after T0 and the watermark delays are 5 and 10 minutes, so no row
is ever late and state is evicted only once nothing can match it any more. A click
matches an impression of its ad at most 15 minutes older. The last file of each side
(TAIL) is a day later and matches nothing: it moves the watermark past every earlier row.
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crash_runs import kill_at_random, run_job, run_killed_at
from unbounded.testing.faults import FAULT_POINTS

JOB = os.path.join(os.path.dirname(__file__), "join_job.py")
T0 = datetime(2026, 11, 25, 10, 0, 0)
FILES, PER_FILE, ADS = 10, 150, 40
TAIL = T0 + timedelta(days=1)
NO_DATA_BATCH = FILES + 1  # batches 0..FILES read files; the watermark then moves on
CLICK_SCHEMA = pa.schema([("clickAdId", pa.int64()), ("clickId", pa.int64()),
                          ("clickTime", pa.timestamp("us", tz="UTC"))])
Row = tuple[int, int, datetime]  # ad id, impression or click id, event time


def _impressions(rng: random.Random) -> list[Row]:
    return [(rng.randrange(ADS), n, T0 + timedelta(seconds=rng.randrange(600 * FILES)))
            for n in range(FILES * PER_FILE)]


def _clicks(rng: random.Random, impressions: list[Row]) -> list[Row]:
    """0-2 clicks per impression, 0-20 minutes after it: some too late to match."""
    clicks: list[Row] = []
    for ad, _, at in impressions:
        for _ in range(rng.choice((0, 1, 1, 2))):
            clicks.append((ad, len(clicks), at + timedelta(seconds=rng.randrange(1201))))
    end = T0 + timedelta(minutes=10 * FILES)
    return [c for c in clicks if c[2] < end]


def _file_of(at: datetime) -> int:
    return int((at - T0).total_seconds() // 600)


def _write_impressions(folder: Path, rows: list[Row], f: int) -> None:
    path = folder / f"imp-{f:03d}.json"
    path.write_text("".join(json.dumps({"adId": a, "impressionId": i,
                                        "ts": t.strftime("%Y-%m-%d %H:%M:%S")}) + "\n"
                            for a, i, t in rows))
    os.utime(path, (1_700_000_000 + f, 1_700_000_000 + f))


def _write_clicks(folder: Path, rows: list[Row], f: int) -> None:
    path = folder / f"clk-{f:03d}.parquet"
    columns = list(zip(*rows, strict=True))
    pq.write_table(pa.table(columns, schema=CLICK_SCHEMA), path)
    os.utime(path, (1_700_000_000 + f, 1_700_000_000 + f))


def write_input(folder: Path) -> None:
    """FILES files of each side, then TAIL's; a file's mtime orders it in its folder."""
    rng = random.Random(23)
    impressions = _impressions(rng)
    clicks = _clicks(rng, impressions)
    (folder / "imp").mkdir()
    (folder / "clk").mkdir()
    for f in range(FILES):
        _write_impressions(folder / "imp", [r for r in impressions if _file_of(r[2]) == f], f)
        _write_clicks(folder / "clk", [r for r in clicks if _file_of(r[2]) == f], f)
    _write_impressions(folder / "imp", [(-1, -1, TAIL)], FILES)
    _write_clicks(folder / "clk", [(-2, -1, TAIL)], FILES)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_input(tmp_path)
    return tmp_path


def _cmd(workdir: Path, how: str) -> list[str]:
    return [sys.executable, JOB, str(workdir / "imp"), str(workdir / "clk"), how,
            str(workdir / "out"), str(workdir / "cp")]


def _inputs(workdir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    impressions = pl.read_ndjson(str(workdir / "imp" / "*.json")).select(
        "adId", "impressionId",
        pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S").alias("impressionTime"))
    clicks = pl.read_parquet(str(workdir / "clk" / "*.parquet")).with_columns(
        pl.col("clickTime").dt.replace_time_zone(None))
    return impressions, clicks


def _matches(impressions: pl.DataFrame, clicks: pl.DataFrame) -> pl.DataFrame:
    pairs = impressions.join(clicks, left_on="adId", right_on="clickAdId", how="inner",
                             coalesce=False)
    return pairs.filter(pl.col("clickTime") >= pl.col("impressionTime"),
                        pl.col("clickTime") <= pl.col("impressionTime")
                        + pl.duration(minutes=15))


def _expected_inner(workdir: Path) -> list[tuple]:
    matches = _matches(*_inputs(workdir))
    assert matches.height > FILES * PER_FILE // 2, "the input must match plenty of rows"
    return sorted(matches.iter_rows())


def _expected_left_outer(workdir: Path) -> list[tuple]:
    """The batch left outer join without TAIL's impression: the final watermark
    (TAIL - 10 min) is past every other impression, so each unmatched one has been
    emitted with NULLs, but not past TAIL, which a later click could still match."""
    impressions, clicks = _inputs(workdir)
    impressions = impressions.filter(pl.col("impressionId") >= 0)
    matches = _matches(impressions, clicks)
    unmatched = impressions.join(matches.select("impressionId"), on="impressionId",
                                 how="anti")
    assert unmatched.height > FILES, "the input must leave impressions unmatched"
    padded = [(*r, None, None, None) for r in unmatched.iter_rows()]
    return sorted([*matches.iter_rows(), *padded], key=repr)


def _actual(spark, workdir: Path) -> list[tuple]:
    rows = spark.read.parquet(str(workdir / "out")).collect()
    return [tuple(r) for r in rows]


def _kill_and_finish(workdir: Path, env: dict[str, str], how: str,
                     kills: list[tuple[str, int]], seed: int) -> None:
    """Two kills at random times (batches stretched so they land mid-run, and stopped at
    the first named kill at the latest), the named kills in order, then a run to the end."""
    cmd = _cmd(workdir, how)
    first_point, first_batch = kills[0]
    guarded = {**env, "UNBOUNDED_TEST_BATCH_DELAY": "0.3",
               "UNBOUNDED_FAULT": f"{first_point}@{first_batch}"}
    rng = random.Random(seed)
    for _ in range(2):
        kill_at_random(cmd, guarded, rng, (1.5, 4.0))
    for point, batch_id in kills:
        run_killed_at(cmd, env, point, batch_id)
    finished = run_job(cmd, env)
    assert finished.returncode == 0, finished.stderr


def test_inner_join_survives_sigkill_at_each_step_and_at_random(workdir, python_env, spark):
    # One step per batch, up to TAIL's batch (FILES) whose files match nothing.
    kills = [(point, FILES - 5 + i) for i, point in enumerate(FAULT_POINTS)]
    _kill_and_finish(workdir, python_env, "inner", kills, seed=5)
    assert sorted(_actual(spark, workdir)) == _expected_inner(workdir)


def test_left_outer_join_emits_each_null_row_once_across_sigkills(workdir, python_env,
                                                                   spark):
    # Each step of the batch that only moves the watermark and emits the last NULL rows,
    # from its planning to its commit; the last run then finds nothing left to do.
    kills = [(point, NO_DATA_BATCH) for point in FAULT_POINTS]
    _kill_and_finish(workdir, python_env, "left_outer", kills, seed=2)
    assert sorted(_actual(spark, workdir), key=repr) == _expected_left_outer(workdir)
