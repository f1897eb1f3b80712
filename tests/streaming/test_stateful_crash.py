"""SIGKILL a windowed aggregation at each batch step and at random; after a restart the
output holds each closed window exactly once, with the values a batch query computes."""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime, timedelta

import polars as pl
import pytest

from crash_runs import kill_at_random, run_job, run_killed_at
from unbounded.testing.faults import FAULT_POINTS

JOB = os.path.join(os.path.dirname(__file__), "stateful_job.py")
FILES, PER_FILE = 6, 400


@pytest.fixture
def workdir(tmp_path):
    """Events half a second apart (20 minutes in all), a little out of order."""
    folder = tmp_path / "input"
    folder.mkdir()
    rng = random.Random(11)
    base = datetime(2026, 11, 25, 10, 0, 0)
    for f in range(FILES):
        lines = []
        for i in range(PER_FILE):
            n = f * PER_FILE + i
            ts = base + timedelta(seconds=n * 0.5 - rng.uniform(0, 20))
            lines.append(json.dumps({"id": n, "kind": ["a", "b", "c"][n % 3],
                                     "amount": n % 17 / 4,
                                     "ts": ts.strftime("%Y-%m-%d %H:%M:%S")}))
        (folder / f"events-{f:03d}.json").write_text("\n".join(lines) + "\n")
        os.utime(folder / f"events-{f:03d}.json", (1_700_000_000 + f, 1_700_000_000 + f))
    return tmp_path


def _cmd(workdir):
    return [sys.executable, JOB, str(workdir / "input"), str(workdir / "out"),
            str(workdir / "cp")]


def _expected(workdir) -> list[tuple]:
    """The same aggregation as one batch query, keeping windows the final watermark closes."""
    events = pl.read_ndjson(str(workdir / "input" / "*.json")).with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC"))
    watermark = events["ts"].max() - pl.duration(seconds=30)
    windows = events.with_columns(pl.col("ts").dt.truncate("1m").alias("start"))
    closed = windows.filter(pl.col("start") + pl.duration(minutes=1) <= watermark)
    grouped = closed.group_by("start", "kind").agg(pl.len().alias("n"),
                                                    pl.col("amount").sum().alias("total"))
    return sorted((r[0].replace(tzinfo=None), r[1], r[2], round(r[3], 6))
                  for r in grouped.iter_rows())


def _actual(spark, workdir) -> list[tuple]:
    rows = spark.read.parquet(str(workdir / "out")).collect()
    return sorted((r["window"]["start"].replace(tzinfo=None), r["kind"], r["n"],
                   round(r["total"], 6)) for r in rows)


def _run(workdir, env):
    return run_job(_cmd(workdir), env)


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_windowed_counts_survive_sigkill_at_each_step(workdir, python_env, spark, point):
    run_killed_at(_cmd(workdir), python_env, point, 2)
    finished = _run(workdir, python_env)
    assert finished.returncode == 0, finished.stderr
    expected = _expected(workdir)
    assert expected, "the input must close some windows"
    assert _actual(spark, workdir) == expected


def test_windowed_counts_survive_random_sigkills(workdir, python_env, spark):
    rng = random.Random(7)
    for _ in range(3):
        kill_at_random(_cmd(workdir), python_env, rng, (0.6, 1.8))
    assert _run(workdir, python_env).returncode == 0
    assert _actual(spark, workdir) == _expected(workdir)
