"""The Kafka pipeline of the demo: an embedded broker, a producer of events, the
Kafka -> per-minute counts -> Parquet query (the reference pipeline), a SIGKILL, a
restart, and the proof that every closed window holds every event exactly once."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC

from rich.console import Console

from unbounded.demo.proof import announce_ui, kill_after_commits, print_proof

__all__ = ["build_query", "produce_events", "run_demo", "run_job", "verify"]

WATERMARK_S = 10
SPACING_MS = 5  # event time between consecutive events


def produce_events(bootstrap: str, topic: str, count: int, start_ms: int) -> None:
    """``count`` events, ``SPACING_MS`` apart in event time, over two partitions."""
    from confluent_kafka import Producer

    quiet = logging.getLogger("unbounded.demo.producer")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False  # librdkafka reports a first connection attempt as an error
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 10000, "logger": quiet})
    for i in range(count):
        producer.produce(topic, f"event-{i}".encode(), partition=i % 2,
                         timestamp=start_ms + i * SPACING_MS)
        if i % 50_000 == 0:
            producer.poll(0)
    producer.flush(60)
    for partition in (0, 1):  # the last record of each partition alone (a tansu quirk)
        producer.produce(topic, b"event-end", partition=partition,
                         timestamp=start_ms + count * SPACING_MS)
        producer.flush(30)
    close = getattr(producer, "close", None)  # confluent-kafka >= 2.13
    if close is not None:
        close()


def build_query(spark: object, bootstrap: str, topic: str, output_dir: str,
                checkpoint: str) -> object:
    from unbounded.sql import SparkSession
    from unbounded.sql.functions import col, window

    assert isinstance(spark, SparkSession)
    kafka_df = (spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", bootstrap).option("subscribe", topic)
                .option("startingOffsets", "earliest").option("maxOffsetsPerTrigger", 20_000)
                .load())
    parsed = kafka_df.selectExpr("CAST(value AS STRING) as message", "timestamp")
    agg = (parsed.withWatermark("timestamp", f"{WATERMARK_S} seconds")
           .groupBy(window(col("timestamp"), "1 minute")).count())
    return (agg.writeStream.outputMode("append").format("parquet")
            .option("checkpointLocation", checkpoint).option("path", output_dir)
            .trigger(availableNow=True).start())


def run_job(bootstrap: str, topic: str, output_dir: str, checkpoint: str) -> None:
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("demo-kafka").getOrCreate()
    query = build_query(spark, bootstrap, topic, output_dir, checkpoint)
    announce_ui(spark)
    query.awaitTermination()  # type: ignore[attr-defined]


def verify(spark: object, output_dir: str, count: int, start_ms: int) -> dict[str, int]:
    """Windows closed by the final watermark, counted from the produced timestamps."""
    from collections import Counter

    from unbounded.sql import SparkSession

    assert isinstance(spark, SparkSession)
    timestamps = [start_ms + i * SPACING_MS for i in range(count)] + [
        start_ms + count * SPACING_MS] * 2
    watermark = max(timestamps) - WATERMARK_S * 1000
    expected = Counter(ts // 60_000 * 60_000 for ts in timestamps
                       if ts // 60_000 * 60_000 + 60_000 <= watermark)
    rows = spark.read.parquet(output_dir).collect()
    starts = [int(r["window"]["start"].replace(tzinfo=UTC).timestamp() * 1000) for r in rows]
    seen = Counter(starts)
    counted = {start: r["count"] for start, r in zip(starts, rows, strict=True)}
    return {"events produced": len(timestamps),
            "events in closed windows": sum(expected.values()),
            "events counted": sum(r["count"] for r in rows),
            "windows expected": len(expected), "windows written": len(rows),
            "duplicates": sum(n - 1 for n in seen.values() if n > 1),
            "missing": sum(1 for w, n in expected.items() if counted.get(w) != n),
            "unexpected": len(set(counted) - set(expected))}


def run_demo(console: Console, workdir: str, count: int = 120_000) -> bool:
    from unbounded.sql import SparkSession
    from unbounded.testing.broker import create_topic, run_broker

    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    console.rule("[bold]Kafka -> per-minute counts -> Parquet")
    with run_broker() as bootstrap:
        topic = "events"
        create_topic(bootstrap, topic, partitions=2)
        start_ms = (int(time.time()) // 60 - 30) * 60_000
        produce_events(bootstrap, topic, count, start_ms)
        console.print(f"broker at {bootstrap}; produced {count:,} events over "
                      f"{count * SPACING_MS // 60_000} minutes of event time")
        output, checkpoint = os.path.join(workdir, "output"), os.path.join(workdir, "checkpoint")
        cmd = [sys.executable, "-m", "unbounded.demo", "kafka-job", "--bootstrap", bootstrap,
               "--topic", topic, "--output", output, "--checkpoint", checkpoint]
        done = kill_after_commits(cmd, checkpoint, 3, timeout=120)
        console.print(f"[bold red]SIGKILL[/] after {done} committed batches; restarting")
        subprocess.run(cmd, check=True, timeout=300)
        spark = SparkSession.builder.appName("demo-check").getOrCreate()
        proof = verify(spark, output, count, start_ms)
    ok = proof["events counted"] == proof["events in closed windows"]
    return print_proof(console, "Kafka: exactly-once proof", proof) and ok
