"""PySpark 4 as the oracle of the state data sources' columns: the same aggregation,
stream-stream join and transformWithStateInPandas run on both engines, then
``statestore`` and ``state-metadata`` read back. Opt-in like ``test_spark_oracle.py``
(UNBOUNDED_SPARK_ORACLE=1, pyspark, Java 17).

Compared: the columns Spark promises (``key``, ``value``, ``partition_id``; the
metadata's seven), the key of an aggregation, a join side's key and value columns and
the rows' keys and values where both engines store the same thing (partition ids are not
compared: the engines hash keys differently). Our documented difference (aggregate
buffer names) is asserted as such. For transformWithStateInPandas every state variable
(flattened and not) and the timers are compared row for row at both batches, a TTL expiry
as "the batch that wrote it" (the engines' batch timestamps differ), and the errors by
class and message.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark, workers_import_from
from unbounded.sql import SparkSession
from unbounded.sql import functions as ours_functions

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need pandas
    workers_import_from(os.path.dirname(os.path.abspath(__file__)))  # the processor
    with started_pyspark("unbounded-state-oracle", **{
            "spark.sql.shuffle.partitions": "2",
    }) as session:
        yield session


def _inputs(base: Path) -> Path:
    for folder, lines in {"in": ['{"k":"a","v":1}', '{"k":"b","v":2}', '{"k":"a","v":3}'],
                          "l": ['{"id":1,"lv":"x"}', '{"id":2,"lv":"y"}'],
                          "r": ['{"id":1,"rv":"p"}', '{"id":3,"rv":"q"}']}.items():
        (base / folder).mkdir(parents=True)
        (base / folder / "0.json").write_text("\n".join(lines) + "\n")
    return base


def _run(spark: Any, F: Any, base: Path, out: Path) -> None:
    """The aggregation and the join, on whichever engine ``spark`` (with its functions
    module ``F``) is: the API is the same."""
    src = spark.readStream.schema("k string, v long").json(str(base / "in"))
    agg = src.groupBy("k").agg(F.count("*").alias("n"), F.sum("v").alias("s"))
    lhs = spark.readStream.schema("id long, lv string").json(str(base / "l"))
    rhs = spark.readStream.schema("id long, rv string").json(str(base / "r"))
    for name, df, mode in [("agg", agg, "complete"), ("join", lhs.join(rhs, "id"), "append")]:
        q = (df.writeStream.format("memory").queryName(f"{name}{abs(hash(str(out)))}")
             .outputMode(mode).option("checkpointLocation", str(out / name)).start())
        q.processAllAvailable()
        q.stop()


def _read(spark: Any, path: Path, fmt: str, **options: str) -> tuple[str, list[Any]]:
    df = spark.read.format(fmt).options(**options).load(str(path))
    return df.schema.simpleString(), sorted(tuple(r) for r in df.collect())


@pytest.fixture(scope="module")
def both(pyspark_session: Any, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Any, Path, Path]:
    from pyspark.sql import functions as spark_functions

    base = _inputs(tmp_path_factory.mktemp("state-oracle"))
    ours = SparkSession.builder.getOrCreate()
    ours.conf.set("spark.sql.shuffle.partitions", "2")
    _run(ours, ours_functions, base, base / "ours")
    _run(pyspark_session, spark_functions, base, base / "spark")
    return pyspark_session, base / "ours", base / "spark"


def test_state_metadata_columns_and_rows_match_spark(both):
    pyspark, ours, spark = both
    ours_session = SparkSession.builder.getOrCreate()
    got = _read(ours_session, ours / "agg", "state-metadata")
    assert got == _read(pyspark, spark / "agg", "state-metadata")
    ours_join, spark_join = (_read(ours_session, ours / "join", "state-metadata"),
                             _read(pyspark, spark / "join", "state-metadata"))
    assert ours_join[0] == spark_join[0]
    assert {r[1] for r in ours_join[1]} == {r[1] for r in spark_join[1]} == {
        "symmetricHashJoin"}


def test_aggregation_keys_match_spark_and_buffers_hold_the_same_partials(both):
    pyspark, ours, spark = both
    schema, rows = _read(SparkSession.builder.getOrCreate(), ours / "agg", "statestore")
    spark_schema, spark_rows = _read(pyspark, spark / "agg", "statestore")
    assert schema.split(",value:")[0] == spark_schema.split(",value:")[0]
    assert [r[0] for r in rows] == [r[0] for r in spark_rows]
    # Spark's buffers (count, sum) vs ours (n#count0, s#sum0, s#sum1 = sum's non-null count)
    assert [(r[1][0], r[1][1]) for r in rows] == [tuple(r[1]) for r in spark_rows]


@pytest.mark.parametrize("side", ["left", "right"])
def test_join_side_keys_and_values_match_spark(both, side):
    pyspark, ours, spark = both
    schema, rows = _read(SparkSession.builder.getOrCreate(), ours / "join", "statestore",
                         joinSide=side)
    spark_schema, spark_rows = _read(pyspark, spark / "join", "statestore", joinSide=side)
    assert schema == spark_schema
    assert sorted(r[:2] for r in rows) == sorted(r[:2] for r in spark_rows)


# ---- transformWithStateInPandas ----------------------------------------------------------
TTL_MS = 3_600_000
FAR_MS = 4_102_444_800_000  # 2100: timers that never fire during the test
VARIABLES = ("count", "seen", "last", "recent", "window", "tags")


class _ProfileLogic:
    """Value, list and map state with and without TTL, a timer per key and count."""

    def init(self, handle: Any) -> None:
        self.handle = handle
        self.count = handle.getValueState("count", "n long")
        self.seen = handle.getListState("seen", "v long")
        self.last = handle.getMapState("last", "w string", "v long")
        self.recent = handle.getValueState("recent", "v long", TTL_MS)
        self.window = handle.getListState("window", "v long", TTL_MS)
        self.tags = handle.getMapState("tags", "w string", "v long", TTL_MS)

    def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
        import pandas as pd

        n = (self.count.get() or (0,))[0]
        for pdf in rows:
            for w, v in zip(pdf["w"], pdf["v"], strict=True):
                n += 1
                self.seen.appendValue((int(v),))
                self.window.appendValue((int(v),))
                self.last.updateValue((str(w),), (int(v),))
                self.tags.updateValue((str(w),), (int(v),))
                self.recent.update((int(v),))
        self.count.update((n,))
        self.handle.registerTimer(FAR_MS + n)
        yield pd.DataFrame({"k": [key[0]], "n": [n]})

    def handleExpiredTimer(self, key: Any, timerValues: Any, expiredTimerInfo: Any) -> Any:
        return iter([])

    def close(self) -> None:
        pass


def _profile(pyspark: bool) -> Any:
    if pyspark:
        from pyspark.sql.streaming.stateful_processor import StatefulProcessor
    else:
        from unbounded.sql.streaming_state import StatefulProcessor
    return type("Profile", (_ProfileLogic, StatefulProcessor), {})()


def _tws_batches(spark: Any, folder: Path, checkpoint: Path, pyspark: bool) -> None:
    """Batch 0 over the first file, batch 1 (after a restart) over the second: a
    processing-time trigger of an hour runs exactly the batch each start finds."""
    for batch in (0, 1):
        df = (spark.readStream.schema("k string, w string, v long")
              .option("maxFilesPerTrigger", 1).json(str(folder))
              .groupBy("k").transformWithStateInPandas(
                  _profile(pyspark), "k string, n long", "Update", "ProcessingTime"))
        q = (df.writeStream.format("noop").outputMode("update").trigger(processingTime="1 hour")
             .option("checkpointLocation", str(checkpoint)).start())
        deadline = time.monotonic() + 300
        while not (checkpoint / "commits" / str(batch)).exists() and q.isActive \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        q.stop()
        assert (checkpoint / "commits" / str(batch)).exists(), q.exception()


def _tws_inputs(base: Path, seed: int) -> Path:
    rng = random.Random(seed)
    folder = base / "tws-in"
    folder.mkdir(parents=True)
    for f in range(2):
        lines = [json.dumps({"k": f"k{rng.randrange(6)}", "w": rng.choice("xyz"),
                             "v": rng.randrange(100)}) for _ in range(25)]
        (folder / f"{f}.json").write_text("\n".join(lines) + "\n")
        os.utime(folder / f"{f}.json", (1_700_000_000 + f, 1_700_000_000 + f))
    return folder


@pytest.fixture(scope="module")
def tws(pyspark_session: Any, tmp_path_factory: pytest.TempPathFactory
        ) -> tuple[Any, Path, Path]:
    pyspark_session.conf.set("spark.sql.streaming.stateStore.providerClass",
                             "org.apache.spark.sql.execution.streaming.state."
                             "RocksDBStateStoreProvider")
    base = tmp_path_factory.mktemp("tws-state-oracle")
    folder = _tws_inputs(base, seed=7)
    ours = SparkSession.builder.getOrCreate()
    ours.conf.set("spark.sql.shuffle.partitions", "2")
    _tws_batches(ours, folder, base / "ours", pyspark=False)
    _tws_batches(pyspark_session, folder, base / "spark", pyspark=True)
    return pyspark_session, base / "ours", base / "spark"


def _batch_times(checkpoint: Path) -> dict[int, str]:
    """TTL expiry (batch timestamp + TTL) -> which batch wrote it."""
    times = {}
    for batch in (0, 1):
        meta = json.loads((checkpoint / "offsets" / str(batch)).read_text().splitlines()[1])
        times[int(meta["batchTimestampMs"]) + TTL_MS] = f"written in batch {batch}"
    return times


def _plain(value: Any, ttl: dict[int, str]) -> Any:
    """A read value as plain Python, TTL expiries named by batch, maps sorted."""
    if isinstance(value, dict):
        return sorted(((_plain(k, ttl), _plain(v, ttl)) for k, v in value.items()), key=repr)
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v, ttl) for v in value)
    return ttl.get(value, value) if isinstance(value, int) else value


def _tws_read(spark: Any, checkpoint: Path, **options: str) -> tuple[str, list[Any]]:
    """Schema and rows without ``partition_id`` (the engines hash keys differently)."""
    df = spark.read.format("statestore").options(**options).load(str(checkpoint))
    ttl = _batch_times(checkpoint)
    return df.schema.simpleString(), sorted((_plain(tuple(r)[:-1], ttl) for r in df.collect()),
                                            key=repr)


@pytest.mark.parametrize("batch", ["0", "1"])
@pytest.mark.parametrize("flatten", ["true", "false"])
@pytest.mark.parametrize("variable", VARIABLES)
def test_transform_with_state_variables_match_spark(tws, variable, flatten, batch):
    pyspark, ours, spark = tws
    options = {"stateVarName": variable, "flattenCollectionTypes": flatten, "batchId": batch}
    mine = _tws_read(SparkSession.builder.getOrCreate(), ours, **options)
    assert len(mine[1]) > 0
    assert mine == _tws_read(pyspark, spark, **options)


@pytest.mark.parametrize("batch", ["0", "1"])
def test_transform_with_state_timers_match_spark(tws, batch):
    pyspark, ours, spark = tws
    mine = _tws_read(SparkSession.builder.getOrCreate(), ours, readRegisteredTimers="true",
                     batchId=batch)
    assert len(mine[1]) > 0
    assert mine == _tws_read(pyspark, spark, readRegisteredTimers="true", batchId=batch)


@pytest.mark.parametrize("options", [
    {}, {"stateVarName": "nope"}, {"stateVarName": "count", "readRegisteredTimers": "true"},
    {"stateVarName": "count", "flattenCollectionTypes": "maybe"},
    {"readRegisteredTimers": "yes"}, {"stateVarName": "count", "snapshotStartBatchId": "0"},
    {"stateVarName": "count", "snapshotStartBatchId": "1", "snapshotPartitionId": "0",
     "batchId": "0"}])
def test_transform_with_state_errors_match_spark(tws, options):
    from pyspark.errors import PySparkException

    pyspark, ours, spark = tws
    with pytest.raises(PySparkException) as theirs:
        pyspark.read.format("statestore").options(**options).load(str(spark)).collect()
    with pytest.raises(Exception) as mine:
        SparkSession.builder.getOrCreate().read.format("statestore").options(
            **options).load(str(ours))
    assert mine.value.error_class == theirs.value.getCondition()
    assert str(theirs.value).startswith(str(mine.value))


def test_transform_with_state_metadata_matches_spark(tws):
    pyspark, ours, spark = tws
    mine = _read(SparkSession.builder.getOrCreate(), ours, "state-metadata")
    theirs = _read(pyspark, spark, "state-metadata")
    assert mine[0] == theirs[0]
    assert [r[:6] for r in mine[1]] == [r[:6] for r in theirs[1]]


def _properties(spark: Any, checkpoint: Path) -> Any:
    raw = spark.read.format("state-metadata").load(str(checkpoint)).collect()[0][-1]
    doc = json.loads(raw) if raw else {}
    return {**doc, "stateVariables": sorted(doc.get("stateVariables", []), key=repr)}


def test_transform_with_state_operator_properties_match_spark(tws):
    pyspark, ours, spark = tws
    assert _properties(SparkSession.builder.getOrCreate(), ours) == _properties(pyspark, spark)
