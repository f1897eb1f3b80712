"""Kafka -> transform -> Kafka with the transactional sink, beside Quix Streams (issue 4).

One tansu broker (``unbounded.testing.broker``; or ``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``)
serves both contenders. The input topic (2 partitions) holds ``rows`` records with
100-byte values; each pipeline upper-cases the value and writes it to its own output
topic with exactly-once delivery: unbounded's Kafka sink (one transaction per batch)
and Quix Streams with ``processing_guarantee="exactly-once"``.

Rates are input records divided by wall time. unbounded's clock starts before the query
starts (``trigger(availableNow=True)``) and stops when it finished, in a process that
ran the same query over 2,000 records on other topics first (modules loaded, as in a
long-running service); Quix's starts at its first record, because its consumer-group
join alone takes about 23 s on tansu, and stops when its last transaction committed.
The ratio is unbounded's rate over Quix's. Quix Streams runs in a venv of its own
(``bench/quix_env.py``: it pins an older ``confluent-kafka``), made on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.harness import (
    BenchContext,
    Measure,
    Workload,
    WorkloadResult,
    stopwatch,
)

__all__ = ["WORKLOAD", "produce_input", "run"]

PARTITIONS = 2
VALUE_BYTES = 100
MAX_OFFSETS_PER_TRIGGER = 500_000
TARGET_RATIO = 10.0
TARGET_RATE = 1_500_000  # records/s, issue 15 (the broker's raw fetch rate was ~2.2M)
WARM_UP_ROWS = 2_000
_QUIX_TIMEOUT_S = 240.0
_PRODUCE_TIMEOUT_S = 180.0


@contextmanager
def _broker() -> Iterator[str]:
    from unbounded.testing.broker import run_broker

    with run_broker() as bootstrap:
        yield bootstrap


def produce_input(bootstrap: str, topic: str, rows: int, partitions: int = PARTITIONS) -> None:
    """``rows`` 100-byte records spread evenly over a new topic's partitions, each
    partition's last record flushed on its own (tansu's ListOffsets needs that)."""
    from confluent_kafka import Producer

    from unbounded.testing.broker import create_topic, produce_records

    create_topic(bootstrap, topic, partitions=partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                         "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000})
    deadline = time.monotonic() + _PRODUCE_TIMEOUT_S
    for p in range(partitions):
        for i in range(rows // partitions - 1):
            _produce_one(producer, topic, f"{p}-{i}-".encode().ljust(VALUE_BYTES, b"x"), p,
                         deadline)
    if producer.flush(max(deadline - time.monotonic(), 1.0)):
        raise TimeoutError(f"input records not delivered within {_PRODUCE_TIMEOUT_S:.0f} s")
    for p in range(partitions):
        produce_records(bootstrap, topic, [b"last".ljust(VALUE_BYTES, b"x")], partition=p)


def _produce_one(producer: Any, topic: str, value: bytes, partition: int,
                 deadline: float) -> None:
    while True:
        try:
            producer.produce(topic, value, partition=partition)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"input not produced within {_PRODUCE_TIMEOUT_S:.0f} s"
                                   ) from None
            producer.poll(0.05)


def _count(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (no transaction of these runs aborts, so all are committed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count",
                         "enable.partition.eof": "true", "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen, at_end, deadline = 0, set(), time.monotonic() + 60
    while len(at_end) < PARTITIONS and time.monotonic() < deadline:
        for m in consumer.consume(100_000, timeout=0.5):
            if m.error() is None:
                seen += 1
            else:
                at_end.add(m.partition())
    consumer.close()
    return seen


def _unbounded(bootstrap: str, source: str, sink: str, checkpoint: str) -> dict[str, Any]:
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName("bench-kafka").getOrCreate()
    with stopwatch() as elapsed:
        query = (spark.readStream.format("kafka")
                 .option("kafka.bootstrap.servers", bootstrap).option("subscribe", source)
                 .option("startingOffsets", "earliest")
                 .option("maxOffsetsPerTrigger", MAX_OFFSETS_PER_TRIGGER).load()
                 .select(F.upper(F.col("value").cast("string")).alias("value"))
                 .writeStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
                 .option("topic", sink).option("checkpointLocation", checkpoint)
                 .trigger(availableNow=True).start())
        query.awaitTermination()
    progress = query.recentProgress
    spent: dict[str, int] = {}
    for p in progress:
        for phase, ms in p["durationMs"].items():
            spent[phase] = spent.get(phase, 0) + ms
    return {"seconds": elapsed[0], "batches": len(progress), "durationMs": spent,
            "input_rows": sum(p["numInputRows"] for p in progress)}


def _quix(bootstrap: str, source: str, sink: str, rows: int, state_dir: str) -> dict[str, Any]:
    """Quix Streams' run, in its own venv (``bench/quix_env.py``), by ``kafka_quix.py``."""
    from bench.quix_env import ensure_quix_python

    cmd = [ensure_quix_python(), os.path.join(os.path.dirname(__file__), "kafka_quix.py"),
           bootstrap, source, sink, str(rows), state_dir, str(_QUIX_TIMEOUT_S)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=_QUIX_TIMEOUT_S + 60)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise RuntimeError(f"Quix Streams run failed: {last[0]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _warm_up(bootstrap: str, run_dir: str, stamp: int) -> None:
    """The same query over a few records on other topics, so the measured run starts in
    a process whose modules are loaded, as Quix's clock starts in a running app."""
    from unbounded.testing.broker import create_topic

    source, sink = f"warm-in-{stamp}", f"warm-out-{stamp}"
    produce_input(bootstrap, source, WARM_UP_ROWS)
    create_topic(bootstrap, sink, partitions=PARTITIONS)
    _unbounded(bootstrap, source, sink, os.path.join(run_dir, "warm-up-checkpoint"))


def run(ctx: BenchContext) -> WorkloadResult:
    rows = ctx.rows - ctx.rows % PARTITIONS
    run_dir = ctx.fresh_run_dir("kafka")
    stamp = time.monotonic_ns()
    source, ours, theirs = f"in-{stamp}", f"out-unbounded-{stamp}", f"out-quix-{stamp}"
    with _broker() as bootstrap:
        with stopwatch() as produced:
            produce_input(bootstrap, source, rows)
        from unbounded.testing.broker import create_topic

        create_topic(bootstrap, ours, partitions=PARTITIONS)
        create_topic(bootstrap, theirs, partitions=PARTITIONS)
        _warm_up(bootstrap, run_dir, stamp)
        stream = _unbounded(bootstrap, source, ours, os.path.join(run_dir, "checkpoint"))
        quix = _quix(bootstrap, source, theirs, rows, os.path.join(run_dir, "quix-state"))
        ours_out, theirs_out = _count(bootstrap, ours), _count(bootstrap, theirs)
    our_rate, their_rate = rows / stream["seconds"], rows / quix["seconds"]
    ratio = our_rate / their_rate
    return WorkloadResult(
        "kafka",
        measures=[
            Measure("quix streams exactly-once (baseline)", their_rate, "records/s", 1.0,
                    note=f"{quix['seconds']:.2f} s from its first record"),
            Measure("unbounded, transactional sink", our_rate, "records/s", ratio,
                    f">= {TARGET_RATIO:.0f}x", ratio >= TARGET_RATIO,
                    f"{stream['seconds']:.2f} s, {stream['batches']} batches"),
            Measure("unbounded, transactional sink: rate against its aim", our_rate,
                    "records/s", None, f">= {TARGET_RATE / 1e6:.1f}M/s",
                    our_rate >= TARGET_RATE, "issue 15's absolute aim, cold process"),
        ],
        checks={
            "unbounded output": _check(ours_out, rows),
            "quix output": _check(theirs_out, rows),
            "unbounded read all input": _check(stream["input_rows"], rows),
        },
        params={"rows": rows, "partitions": PARTITIONS, "value_bytes": VALUE_BYTES,
                "maxOffsetsPerTrigger": MAX_OFFSETS_PER_TRIGGER,
                "produce_seconds": round(produced[0], 2), "unbounded": stream, "quix": quix},
    )


def _check(found: int, wanted: int) -> str:
    return f"ok ({found:,})" if found == wanted else f"FAIL {found:,} of {wanted:,}"


WORKLOAD = Workload("kafka", "Kafka -> upper(value) -> Kafka, exactly-once, vs Quix Streams",
                    1_000_000, run)
