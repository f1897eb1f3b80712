"""The transactional Kafka sink writes a batch's task outputs as they are, chunks not
joined first: record batches cut across chunk and task boundaries still carry every row
once, in order."""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, TopicPartition

from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.kafka import KafkaSink, _task_rows
from unbounded.testing.broker import create_topic, unique_topic

CHUNKS, ROWS = 3, 40


def _committed_values(bootstrap: str, topic: str) -> list[bytes]:
    """Values of partition 0's committed records, in log order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.partition.eof": "true"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[bytes] = []
    deadline, at_end = time.monotonic() + 30, False
    while not at_end and time.monotonic() < deadline:
        for m in consumer.consume(1000, timeout=0.2):
            if m.error() is None:
                found.append(m.value())
            else:
                at_end = True
    consumer.close()
    return found


def _task_output(task: int) -> pa.Table:
    """One task's rows in ``CHUNKS`` chunks, values 20-60 bytes long."""
    parts = []
    for chunk in range(CHUNKS):
        values = [f"t{task}-c{chunk}-r{i}-".ljust(20 + i, "x") for i in range(ROWS)]
        parts.append(pa.table({"value": pa.array(values, pa.large_string())}))
    return pa.concat_tables(parts)


def test_rows_of_chunked_task_outputs_are_written_once_in_order(kafka_bootstrap: str) -> None:
    topic = unique_topic("sink-chunks")
    create_topic(kafka_bootstrap, topic, partitions=1)
    tasks = [_task_output(0), _task_output(1)]
    batch = MicroBatch(0, tasks[0].schema, tasks)
    assert _task_rows(batch).column("value").num_chunks == 2 * CHUNKS  # not joined
    options = {"kafka.bootstrap.servers": kafka_bootstrap, "topic": topic,
               "kafka.batch.size": "500"}  # record batches span chunks
    sink = KafkaSink("kafka", SinkContext(f"q-{uuid.uuid4()}", None, options, "append", None))
    sink.add_batch(0, batch)
    sink.stop()
    expected = [v.encode() for t in tasks for v in t.column("value").to_pylist()]
    assert _committed_values(kafka_bootstrap, topic) == expected
