"""The transactional Kafka sink against a real broker.

tansu 0.6.0 shows aborted records to read_committed consumers, so these tests judge
exactly-once only where no aborted transaction exists, or by tagging the data of a
transaction that is meant to be aborted.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, TopicPartition

from unbounded.errors import AnalysisException, ConcurrentQueryError
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.kafka import KafkaSink
from unbounded.testing.broker import BOOTSTRAP_ENV, create_topic, unique_topic

pytestmark = pytest.mark.timeout(90)
SRC = str(Path(__file__).resolve().parents[3] / "src")


def make_sink(bootstrap: str, query_id: str, **options: str) -> KafkaSink:
    opts = {"kafka.bootstrap.servers": bootstrap, **options}
    return KafkaSink("kafka", SinkContext(query_id, None, opts, "append", None))


def batch(batch_id: int, table: pa.Table) -> MicroBatch:
    return MicroBatch(batch_id, table.schema, [table])


def rows(*values: str, key: bytes | None = None) -> pa.Table:
    return pa.table({"value": pa.array(list(values), pa.large_string()),
                     "key": pa.array([key] * len(values), pa.large_binary())})


def read_topic(bootstrap: str, topic: str, partitions: int = 1) -> list[tuple[Any, ...]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.partition.eof": "true"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[tuple[Any, ...]] = []
    at_end: set[int] = set()
    for _ in range(100):
        for m in consumer.consume(1000, timeout=0.2):
            if m.error() is None:
                found.append((m.value(), m.key(), m.partition(), m.headers()))
            else:
                at_end.add(m.partition())
        if len(at_end) == partitions:
            break
    consumer.close()
    return found


@pytest.fixture
def out_topic(kafka_bootstrap: str) -> str:
    name = unique_topic("out")
    create_topic(kafka_bootstrap, name, partitions=2)
    return name


def test_a_batch_replayed_after_a_crash_is_not_written_twice(kafka_bootstrap: str,
                                                             out_topic: str) -> None:
    query = f"q-{uuid.uuid4()}"
    first = make_sink(kafka_bootstrap, query, topic=out_topic)
    first.add_batch(0, batch(0, rows("a", "b")))
    first.add_batch(1, batch(1, rows("c")))
    # the process "dies" before the runner writes commits/1: no stop(), a new sink
    restarted = make_sink(kafka_bootstrap, query, topic=out_topic)
    assert restarted.last_committed_batch() == 1
    restarted.add_batch(1, batch(1, rows("c")))
    restarted.add_batch(2, batch(2, rows("d")))
    restarted.stop()
    values = sorted(v for v, *_ in read_topic(kafka_bootstrap, out_topic, 2))
    assert values == [b"a", b"b", b"c", b"d"]


def test_a_new_run_fences_the_previous_producer(kafka_bootstrap: str, out_topic: str) -> None:
    query = f"q-{uuid.uuid4()}"
    zombie = make_sink(kafka_bootstrap, query, topic=out_topic)
    zombie.add_batch(0, batch(0, rows("first")))
    successor = make_sink(kafka_bootstrap, query, topic=out_topic)
    assert successor.last_committed_batch() == 0
    with pytest.raises(ConcurrentQueryError, match="fenced"):
        zombie.add_batch(1, batch(1, rows("zombie")))
    successor.add_batch(1, batch(1, rows("second")))
    assert make_sink(kafka_bootstrap, query, topic=out_topic).last_committed_batch() == 1
    values = {v for v, *_ in read_topic(kafka_bootstrap, out_topic, 2)}
    assert {b"first", b"second"} <= values
    if os.environ.get(BOOTSTRAP_ENV):  # tansu shows aborted records to read_committed
        assert b"zombie" not in values


def test_a_sigkill_mid_transaction_leaves_the_batch_to_the_next_run(kafka_bootstrap: str,
                                                                    out_topic: str,
                                                                    tmp_path: Path) -> None:
    query = f"q-{uuid.uuid4()}"
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import pyarrow as pa
        from unbounded.sinks.base import MicroBatch, SinkContext
        from unbounded.sinks.kafka import KafkaSink
        opts = {{"kafka.bootstrap.servers": {kafka_bootstrap!r}, "topic": {out_topic!r}}}
        sink = KafkaSink("kafka", SinkContext({query!r}, None, opts, "append", None))
        t = pa.table({{"value": ["ok0"]}})
        sink.add_batch(0, MicroBatch(0, t.schema, [t]))
        t = pa.table({{"value": ["crashed1"]}})
        sink.add_batch(1, MicroBatch(1, t.schema, [t]))
    """))
    env = {**os.environ, "PYTHONPATH": SRC, "UNBOUNDED_FAULT": "mid-sink-write@1"}
    proc = subprocess.run([sys.executable, str(script)], env=env, timeout=60,
                          capture_output=True, check=False)
    assert proc.returncode == -9, proc.stderr.decode()
    restarted = make_sink(kafka_bootstrap, query, topic=out_topic)
    assert restarted.last_committed_batch() == 0
    restarted.add_batch(1, batch(1, rows("replayed1")))
    restarted.stop()
    values = [v for v, *_ in read_topic(kafka_bootstrap, out_topic, 2)]
    assert values.count(b"ok0") == 1
    assert values.count(b"replayed1") == 1
    if os.environ.get(BOOTSTRAP_ENV):
        assert b"crashed1" not in values


def test_keys_partitions_headers_and_topic_column_are_written(kafka_bootstrap: str,
                                                              out_topic: str) -> None:
    header_type = pa.large_list(pa.struct([("key", pa.large_string()),
                                           ("value", pa.large_binary())]))
    table = pa.table({
        "value": pa.array([b"v0", b"v1"], pa.large_binary()),
        "key": pa.array(["k0", None], pa.large_string()),
        "topic": pa.array([out_topic, out_topic], pa.large_string()),
        "partition": pa.array([1, 1], pa.int32()),
        "headers": pa.array([[{"key": "h", "value": b"x"}], None], header_type),
    })
    sink = make_sink(kafka_bootstrap, f"q-{uuid.uuid4()}")
    sink.add_batch(0, batch(0, table))
    sink.stop()
    found = sorted(read_topic(kafka_bootstrap, out_topic, 2), key=lambda r: r[0])
    assert found == [(b"v0", b"k0", 1, [("h", b"x")]), (b"v1", None, 1, None)]


def test_at_least_once_mode_writes_with_a_plain_producer(kafka_bootstrap: str,
                                                         out_topic: str) -> None:
    sink = make_sink(kafka_bootstrap, f"q-{uuid.uuid4()}", topic=out_topic,
                     deliveryGuarantee="at-least-once")
    sink.add_batch(0, batch(0, rows(*[f"r{i}" for i in range(1000)])))
    assert sink.last_committed_batch() is None
    sink.stop()
    assert len(read_topic(kafka_bootstrap, out_topic, 2)) == 1000


def test_bad_options_and_columns_are_rejected_with_the_fix(kafka_bootstrap: str) -> None:
    bad_options: list[dict[str, str]] = [
        {"topic": "t"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "deliveryGuarantee": "maybe"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "kafka.transactional.id": "x"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "kafka.value.serializer": "x"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "kafkaProducer.timeoutMs": "soon"},
    ]
    for options in bad_options:
        with pytest.raises(AnalysisException):
            KafkaSink("kafka", SinkContext("q", None, options, "append", None))
    sink = make_sink(kafka_bootstrap, "q")
    with pytest.raises(AnalysisException, match="'value' not found"):
        sink.validate_schema(pa.schema([("v", pa.string())]))
    with pytest.raises(AnalysisException, match="topic option is required"):
        sink.validate_schema(pa.schema([("value", pa.string())]))
    with pytest.raises(AnalysisException, match="'value' must be string or binary"):
        make_sink(kafka_bootstrap, "q", topic="t").validate_schema(
            pa.schema([("value", pa.int64())]))


def test_secrets_are_absent_from_the_description_and_logs(
        kafka_bootstrap: str, out_topic: str, caplog: pytest.LogCaptureFixture) -> None:
    sink = make_sink(kafka_bootstrap, f"q-{uuid.uuid4()}", topic=out_topic,
                     **{"kafka.sasl.password": "pw-hunter2", "kafka.sasl.username": "u",
                        "kafka.security.protocol": "PLAINTEXT"})
    with caplog.at_level(logging.DEBUG):
        sink.add_batch(0, batch(0, rows("x")))
        sink.add_batch(0, batch(0, rows("x")))  # replay: logged and skipped
        sink.stop()
    assert "pw-hunter2" not in sink.description
    assert "redacted" in sink.description
    assert "pw-hunter2" not in caplog.text
    assert "skips batch 0" in caplog.text
