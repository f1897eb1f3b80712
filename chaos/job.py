"""The query the chaos suite runs as a child process (to SIGKILL, pause and restart it).

    python -m chaos.job SINK QUERY INPUT OUTPUT CHECKPOINT [BOOTSTRAP]

SINK is ``file`` (Parquet with ``_spark_metadata``), ``foreach`` (foreachBatch writing one
Parquet file per batch id, replaced when a batch is re-run: an idempotent writer) or
``kafka`` (transactional; OUTPUT is the topic) or ``delta`` (a Delta table at OUTPUT,
one commit per batch). QUERY is ``stateless`` (filter and
projection), ``windowed`` (10 s tumbling windows per key, 15 s watermark, append),
``dedup`` (distinct key and sequence bucket, no watermark), ``join`` (stream-stream
inner join of a key's even sequence number with the next, no watermark) or
``aggregate`` (count and sum per key, update mode; not into the file sink). INPUT is a
folder of JSON files, or with ``CHAOS_KAFKA_INPUT=<bootstrap>`` a topic.
Every job uses ``availableNow`` with one input file per batch and exits 0 when done.

With ``CHAOS_CLOCK_SEED`` set, the engine's wall clock (``now_ms``, which stamps batches and
progress) jumps hours and days forward and back at random, the query runs with a 50 ms
processing-time trigger until all input is processed, and each batch's id, watermark and
input rows are written as JSON lines to ``$CHAOS_PROGRESS``. With ``CHAOS_PARTITION`` set,
the file and Delta sinks write ``part=<n>/`` folders (``part``: ``id`` or ``ids`` modulo 3, a
column the oracle does not compare).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

__all__ = ["JumpingClock", "build_query", "foreach_writer", "main"]


class JumpingClock:
    """``now_ms`` whose offset from the real clock jumps at random: up to two days either
    way, sometimes back to none; never ``time.monotonic``, which the trigger waits use."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.offset_ms = 0
        self.jumps = 0

    def __call__(self) -> int:
        if self.rng.random() < 0.3:
            self.offset_ms = self.rng.choice([0, 1, -1]) * self.rng.randrange(3_600_000,
                                                                              172_800_000)
            self.jumps += 1
        return int(time.time() * 1000) + self.offset_ms


def _install_clock(seed: int) -> JumpingClock:
    from unbounded.runtime import execution, microbatch, progress

    clock = JumpingClock(seed)
    for module in (execution, microbatch, progress):
        module.now_ms = clock  # type: ignore[attr-defined]
    return clock


_SCHEMA = "id LONG, key STRING, seq LONG, ts TIMESTAMP, ts_ms LONG"


def _read(spark: Any, source: str) -> Any:
    """The input rows: JSON files one per batch, or (``CHAOS_KAFKA_INPUT`` set) the
    records of the topic ``source`` on ``$CHAOS_KAFKA_INPUT``, one file's records per
    batch (``maxOffsetsPerTrigger`` = ``$CHAOS_PER_FILE``, one partition)."""
    from unbounded.sql import functions as F

    bootstrap = os.environ.get("CHAOS_KAFKA_INPUT")
    if not bootstrap:
        return spark.readStream.schema(_SCHEMA).option("maxFilesPerTrigger", 1).json(source)
    records = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
               .option("subscribe", source).option("startingOffsets", "earliest")
               .option("maxOffsetsPerTrigger", os.environ["CHAOS_PER_FILE"]).load())
    parsed = F.from_json(F.col("value").cast("string"), _SCHEMA)
    return records.select(parsed.alias("r")).select("r.*")


def _windowed(rows: Any) -> Any:
    from unbounded.sql import functions as F

    return (rows.withWatermark("ts", "15 seconds")
            .groupBy(F.window("ts", "10 seconds"), "key")
            .agg(F.count("id").alias("count"), F.sum("id").alias("ids"))
            .select(F.col("window.start").alias("ws"), "key", "count", "ids"))


def _join(spark: Any, source: str) -> Any:
    """Stream-stream inner join (no watermark): each even sequence number of a key with
    the key's next one, two reads of the same input."""
    from unbounded.sql import functions as F

    left = _read(spark, source).where(F.col("seq") % 2 == 0).select(
        "key", F.col("seq").alias("jseq"), F.col("id").alias("lid"))
    right = _read(spark, source).where(F.col("seq") % 2 == 1).select(
        "key", (F.col("seq") - 1).alias("jseq"), F.col("id").alias("rid"))
    return left.join(right, ["key", "jseq"]).select("key", "lid", "rid")


def _rows(spark: Any, query: str, source: str) -> Any:
    """The query's output rows (see QUERIES in ``chaos.workload``)."""
    from unbounded.sql import functions as F

    if query == "join":
        return _join(spark, source)
    rows = _read(spark, source)
    if query == "stateless":
        return rows.where(F.col("seq") % 7 != 3).select("id", "key", "seq", "ts_ms")
    if query == "dedup":
        bucket = F.floor(F.col("seq") / 5).cast("long").alias("bucket")
        return rows.select("key", bucket).dropDuplicates(["key", "bucket"])
    if query == "aggregate":
        return rows.groupBy("key").agg(F.count("id").alias("count"),
                                       F.sum("id").alias("ids"))
    return _windowed(rows)


def foreach_writer(output: str) -> Any:
    """A foreachBatch function that writes ``batch-<id>.parquet`` atomically: a re-run
    batch replaces its own file, so the writer is idempotent per batch id."""
    def write(df: Any, batch_id: int) -> None:
        import pyarrow.parquet as pq

        os.makedirs(output, exist_ok=True)
        final = os.path.join(output, f"batch-{batch_id:06d}.parquet")
        tmp = final + ".tmp"
        pq.write_table(df.toArrow(), tmp)
        os.replace(tmp, final)
    return write


def _kafka_values(rows: Any) -> Any:
    """One ``|``-joined value per row; timestamps as epoch milliseconds."""
    from unbounded.sql import functions as F

    cells = [F.col(name).cast("long") * 1000 if kind == "timestamp"
             else F.col(name).cast("string") for name, kind in rows.dtypes]
    return rows.select(F.concat_ws("|", *cells).alias("value"))


def _partitioned(rows: Any, query: str) -> Any:
    """``part`` = a long column modulo 3 (new ``part=<n>/`` folders in some batches)."""
    from unbounded.sql import functions as F

    column = {"stateless": "id", "windowed": "ids", "join": "lid"}.get(query, "count")
    return rows.withColumn("part", F.col(column) % 3)


def build_query(spark: Any, sink: str, query: str, args: list[str]) -> Any:
    """Start the query named by ``sink`` and ``query`` (see the module docstring)."""
    source, output, checkpoint = args[:3]
    rows = _rows(spark, query, source)
    partitioned = sink in ("file", "delta") and bool(os.environ.get("CHAOS_PARTITION"))
    if partitioned:
        rows = _partitioned(rows, query)
    if sink == "kafka":
        rows = _kafka_values(rows)
    writer = rows.writeStream.option("checkpointLocation", checkpoint)
    if os.environ.get("CHAOS_CLOCK_SEED"):
        writer = writer.trigger(processingTime="50 milliseconds")
    else:
        writer = writer.trigger(availableNow=True)
    writer = writer.outputMode("update" if query == "aggregate" else "append")
    if sink in ("file", "delta"):
        writer = writer.partitionBy("part") if partitioned else writer
        return writer.format("parquet" if sink == "file" else "delta").start(output)
    if sink == "foreach":
        return writer.foreachBatch(foreach_writer(output)).start()
    return (writer.format("kafka").option("kafka.bootstrap.servers", args[3])
            .option("kafka.transaction.timeout.ms",
                    os.environ.get("CHAOS_TXN_TIMEOUT_MS", "60000"))
            .option("topic", output).start())


def main(argv: list[str]) -> int:
    from unbounded.sql import SparkSession

    sink, query, *rest = argv
    spark = (SparkSession.builder.appName(f"chaos-{sink}-{query}")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
             .config("spark.sql.streaming.minBatchesToRetain",
                     os.environ.get("CHAOS_RETAIN", "100"))
             .getOrCreate())
    seed = os.environ.get("CHAOS_CLOCK_SEED")
    if not seed:
        build_query(spark, sink, query, rest).awaitTermination()
        return 0
    clock = _install_clock(int(seed))
    running = build_query(spark, sink, query, rest)
    running.processAllAvailable()
    time.sleep(0.5)  # idle triggers under the jumping clock: they must not run batches
    running.stop()
    with open(os.environ["CHAOS_PROGRESS"], "w") as f:
        for p in running.recentProgress:
            f.write(json.dumps({"batchId": p["batchId"], "numInputRows": p["numInputRows"],
                                "watermark": p.get("eventTime", {}).get("watermark"),
                                "jumps": clock.jumps}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
