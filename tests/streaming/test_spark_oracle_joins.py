"""Apache Spark as the oracle for joins: batch joins of every type on random rows, and
stream-stream joins (and a join feeding a windowed aggregation) over the same files with
the same batch boundaries in both engines.

Opt-in, as tests/streaming/test_spark_oracle.py: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle_joins.py`` with ``pyspark`` installed and Java 17+.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark
from unbounded.sql import SparkSession
from unbounded.sql import functions as F

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]

HOWS = ["inner", "left", "right", "full", "left_semi", "left_anti", "cross"]
T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    with started_pyspark("unbounded-oracle-joins", **{
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.session.timeZone": "UTC",
    }) as session:
        yield session


@pytest.fixture(scope="module")
def ours() -> Iterator[SparkSession]:
    session = SparkSession.builder.appName("oracle-joins").create()
    yield session
    session.stop()


def _rows(seed: int) -> tuple[list[tuple], list[tuple]]:
    rng = random.Random(seed)
    key = lambda: rng.choice([None, 0, 1, 2, 3, 4])  # noqa: E731
    left = [(key(), rng.randint(0, 9)) for _ in range(25)]
    right = [(key(), rng.randint(0, 9)) for _ in range(20)]
    return left, right


def _bag(rows: list[Any]) -> Counter[tuple]:
    return Counter(tuple(r) for r in rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("on", ["names", "equality", "residual"])
def test_batch_join_matches_spark(ours, pyspark_session, seed, how, on):
    left, right = _rows(seed)
    results = []
    for session in (ours, pyspark_session):
        a = session.createDataFrame(left, "k INT, a INT").alias("l")
        b = session.createDataFrame(right, "k INT, b INT").alias("r")
        if how == "cross":
            joined = a.crossJoin(b)
        elif on == "names":
            joined = a.join(b, "k", how)
        elif on == "equality":
            joined = a.join(b, F.col("l.k") == F.col("r.k"), how) if session is ours else \
                a.join(b, _spark_col("l.k") == _spark_col("r.k"), how)
        else:
            condition = "l.k = r.k AND l.a < r.b"
            joined = a.join(b, F.expr(condition), how) if session is ours else \
                a.join(b, _spark_expr(condition), how)
        results.append((joined.columns, _bag(joined.collect())))
    assert results[0] == results[1]


def _spark_col(name: str) -> Any:
    from pyspark.sql import functions as PF

    return PF.col(name)


def _spark_expr(text: str) -> Any:
    from pyspark.sql import functions as PF

    return PF.expr(text)


def _write_side(folder: str, name: str, files: list[list[dict[str, Any]]]) -> str:
    path = os.path.join(folder, name)
    os.makedirs(path)
    for i, rows in enumerate(files):
        file = os.path.join(path, f"{i:03d}.json")
        with open(file, "w") as out:
            out.write("".join(json.dumps(r) + "\n" for r in rows))
        # Both engines take files in modification-time order: make it the file order.
        os.utime(file, (1_700_000_000 + i, 1_700_000_000 + i))
    return path


def _ads_files(tmp_path) -> tuple[str, str]:
    """Impressions and clicks in files whose event times only grow (nothing is late in
    either engine), clicks 0-90 minutes after their impression, some never clicked."""
    rng = random.Random(7)
    impressions: list[list[dict[str, Any]]] = []
    clicks: list[list[dict[str, Any]]] = []
    ad = 0
    for f in range(6):
        imp_rows, clk_rows = [], []
        for _ in range(8):
            at = T0 + dt.timedelta(minutes=f * 120 + rng.randint(0, 20))
            imp_rows.append({"adId": ad, "impressionTime": at.isoformat(sep=" ")})
            if rng.random() < 0.7:
                click = at + dt.timedelta(minutes=rng.choice([5, 30, 59, 61, 90]))
                clk_rows.append({"clickAdId": ad, "clickTime": click.isoformat(sep=" ")})
            ad += 1
        impressions.append(imp_rows)
        clicks.append(clk_rows or [{"clickAdId": -1,
                                    "clickTime": (T0 + dt.timedelta(minutes=f * 120 + 25))
                                    .isoformat(sep=" ")}])
    folder = str(tmp_path / "input")
    return (_write_side(folder, "impressions", impressions),
            _write_side(folder, "clicks", clicks))


def _ads_query(session: Any, functions: Any, imp_dir: str, clk_dir: str, how: str,
               windowed: bool) -> Any:
    impressions = (session.readStream.schema("adId INT, impressionTime TIMESTAMP")
                   .option("maxFilesPerTrigger", 1).json(imp_dir)
                   .withWatermark("impressionTime", "2 hours"))
    clicks = (session.readStream.schema("clickAdId INT, clickTime TIMESTAMP")
              .option("maxFilesPerTrigger", 1).json(clk_dir)
              .withWatermark("clickTime", "3 hours"))
    joined = impressions.join(clicks, functions.expr(
        "clickAdId = adId AND clickTime >= impressionTime AND "
        "clickTime <= impressionTime + interval 1 hour"), how)
    if windowed:
        return joined.groupBy(functions.window("impressionTime", "2 hours")).count()
    return joined


def _run_stream(session: Any, functions: Any, dirs: tuple[str, str], how: str,
                windowed: bool, checkpoint: str) -> Counter[tuple]:
    rows: list[Any] = []
    query = (_ads_query(session, functions, *dirs, how, windowed).writeStream
             .outputMode("append")
             .foreachBatch(lambda df, _: rows.extend(df.collect()))
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    query.awaitTermination()
    return _bag(rows)


@pytest.mark.parametrize(("how", "windowed"), [("inner", False), ("left_outer", False),
                                               ("inner", True)])
def test_stream_stream_join_matches_spark(ours, pyspark_session, tmp_path, how, windowed):
    from pyspark.sql import functions as PF

    dirs = _ads_files(tmp_path)
    theirs = _run_stream(pyspark_session, PF, dirs, how, windowed, str(tmp_path / "cp-spark"))
    mine = _run_stream(ours, F, dirs, how, windowed, str(tmp_path / "cp-ours"))
    assert sum(mine.values()) > 0
    assert mine == theirs


def _event_files(tmp_path) -> str:
    """Events (id, k, ts) in files whose times grow, with repeated ids for dedup."""
    rng = random.Random(11)
    files = []
    for f in range(6):
        rows = []
        for i in range(10):
            at = T0 + dt.timedelta(minutes=f * 40 + rng.randint(0, 15))
            ident = f * 10 + (i % 7)
            rows.append({"id": ident, "k": rng.choice("ab"), "ts": at.isoformat(sep=" ")})
        files.append(rows)
    return _write_side(str(tmp_path / "input"), "events", files)


def _chain_query(session: Any, functions: Any, folder: str, chain: str) -> Any:
    events = (session.readStream.schema("id INT, k STRING, ts TIMESTAMP")
              .option("maxFilesPerTrigger", 1).json(folder)
              .withWatermark("ts", "10 minutes"))
    if chain == "windows":
        five = events.groupBy(functions.window("ts", "5 minutes"), "k").count()
        return (five.groupBy(functions.window(functions.window_time("window"), "1 hour"))
                .agg(functions.sum("count").alias("total")))
    return (events.dropDuplicates(["id", "ts"])
            .groupBy(functions.window("ts", "10 minutes")).count())


def _run_chain(session: Any, functions: Any, folder: str, chain: str,
               checkpoint: str) -> Counter[tuple]:
    rows: list[Any] = []
    query = (_chain_query(session, functions, folder, chain).writeStream
             .outputMode("append").foreachBatch(lambda df, _: rows.extend(df.collect()))
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    query.awaitTermination()
    return _bag(rows)


@pytest.mark.parametrize("chain", ["windows", "dedup"])
def test_chained_stateful_operators_match_spark(ours, pyspark_session, tmp_path, chain):
    from pyspark.sql import functions as PF

    folder = _event_files(tmp_path)
    results = [_run_chain(session, functions, folder, chain, str(tmp_path / f"cp-{name}"))
               for session, functions, name in ((pyspark_session, PF, "spark"), (ours, F, "ours"))]
    assert sum(results[1].values()) > 0
    assert results[1] == results[0]
