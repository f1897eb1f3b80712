"""The Kafka source against a real broker (tansu, or $UNBOUNDED_TEST_KAFKA_BOOTSTRAP)."""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, Producer, TopicPartition

from unbounded._kafka.common import (
    REDACTED,
    client_config,
)
from unbounded.errors import (
    AnalysisException,
    CheckpointCorruptError,
    KafkaDataLossError,
    KafkaUnavailableError,
)
from unbounded.sources.base import SourceContext
from unbounded.sources.kafka import (
    KafkaInputPartition,
    KafkaSource,
    kafka_read_schema,
    kafka_schema,
    offsets_from_json,
    offsets_to_json,
    rate_limit,
)
from unbounded.testing.broker import (
    create_topic,
    delete_topic,
    produce_records,
    unique_topic,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _close_kept_consumers() -> Any:
    """Tests read partitions without a query, so nothing else closes kept consumers."""
    yield
    from unbounded.sources.kafka import _POOL

    _POOL.close()


def make_source(bootstrap: str, tmp_path: Path | None = None, **options: str) -> KafkaSource:
    opts = {"kafka.bootstrap.servers": bootstrap, **options}
    metadata = None if tmp_path is None else str(tmp_path / "sources" / "0")
    return KafkaSource("kafka", SourceContext(opts, None, metadata))


def read_all(source: KafkaSource, start: Any, end: Any) -> pa.Table:
    """The partitions' rows in Spark's Arrow types (a partition's keys and values are
    binary_view, which Arrow's sort cannot take), by partition and offset."""
    tables = [p.read() for p in source.partitions(start, end)]
    spark = source.schema.to_arrow_schema()
    if not tables:
        return spark.empty_table()
    table = pa.concat_tables(tables)
    assert table.schema == kafka_read_schema("headers" in spark.names)
    return table.cast(spark).sort_by([("partition", "ascending"), ("offset", "ascending")])


def values(table: pa.Table) -> list[bytes]:
    return table.column("value").to_pylist()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("src")
    create_topic(kafka_bootstrap, name, partitions=2)
    produce_records(kafka_bootstrap, name, [b"a%d" % i for i in range(10)], partition=0)
    produce_records(kafka_bootstrap, name, [b"b%d" % i for i in range(5)], partition=1)
    return name


def test_a_range_reads_exactly_its_offsets(kafka_bootstrap: str, topic: str) -> None:
    source = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest")
    table = read_all(source, {topic: {"0": 2, "1": 0}}, {topic: {"0": 7, "1": 3}})
    assert table.schema == kafka_schema().to_arrow_schema()
    assert values(table) == [b"a2", b"a3", b"a4", b"a5", b"a6", b"b0", b"b1", b"b2"]
    assert table.column("offset").to_pylist() == [2, 3, 4, 5, 6, 0, 1, 2]
    assert set(table.column("topic").to_pylist()) == {topic}
    assert table.column("timestampType").to_pylist() == [0] * 8


def test_a_new_source_instance_replays_the_same_records(kafka_bootstrap: str, topic: str,
                                                         tmp_path: Path) -> None:
    first = make_source(kafka_bootstrap, tmp_path, subscribe=topic, startingOffsets="earliest")
    end = first.latest_offset(None)
    assert end == {topic: {"0": 10, "1": 5}}
    produce_records(kafka_bootstrap, topic, [b"later"], partition=0)
    again = make_source(kafka_bootstrap, tmp_path, subscribe=topic, startingOffsets="latest")
    assert read_all(again, None, end).equals(read_all(first, None, end))
    assert len(read_all(again, None, end)) == 15


def test_offsets_json_round_trips_in_sparks_format() -> None:
    text = '{"topicA":{"0":23,"1":-2},"topicB":{"0":-1}}'
    offsets = offsets_from_json(text)
    assert offsets == {("topicA", 0): 23, ("topicA", 1): -2, ("topicB", 0): -1}
    assert offsets_from_json(offsets_to_json(offsets)) == offsets
    assert offsets_to_json(offsets) == {"topicA": {"0": 23, "1": -2}, "topicB": {"0": -1}}


def test_starting_offsets_earliest_latest_and_json(kafka_bootstrap: str, topic: str) -> None:
    earliest = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest")
    latest = make_source(kafka_bootstrap, subscribe=topic)
    placeholders = make_source(kafka_bootstrap, subscribe=topic,
                               startingOffsets=f'{{"{topic}":{{"0":-2,"1":-1}}}}')
    explicit = make_source(kafka_bootstrap, subscribe=topic,
                           startingOffsets=f'{{"{topic}":{{"0":4,"1":2}}}}')
    assert earliest.initial_offset() == {topic: {"0": 0, "1": 0}}
    assert latest.initial_offset() == {topic: {"0": 10, "1": 5}}
    assert latest.latest_offset(None) is None
    assert placeholders.initial_offset() == {topic: {"0": 0, "1": 5}}
    assert values(read_all(explicit, None, {topic: {"0": 6, "1": 3}})) == [b"a4", b"a5", b"b2"]


def test_json_starting_offsets_must_name_every_partition(kafka_bootstrap: str,
                                                         topic: str) -> None:
    source = make_source(kafka_bootstrap, subscribe=topic,
                         startingOffsets=f'{{"{topic}":{{"0":1}}}}')
    with pytest.raises(AnalysisException, match=f"{topic}-1"):
        source.initial_offset()


def test_initial_offsets_are_persisted_and_reused_after_restart(kafka_bootstrap: str,
                                                                topic: str,
                                                                tmp_path: Path) -> None:
    make_source(kafka_bootstrap, tmp_path, subscribe=topic).initial_offset()
    stored = (tmp_path / "sources" / "0" / "0").read_text()
    assert stored == f'v1\n{{"{topic}":{{"0":10,"1":5}}}}'
    produce_records(kafka_bootstrap, topic, [b"more"], partition=1)
    restarted = make_source(kafka_bootstrap, tmp_path, subscribe=topic)
    assert restarted.initial_offset() == {topic: {"0": 10, "1": 5}}
    assert values(read_all(restarted, None, restarted.latest_offset(None))) == [b"more"]


def test_unknown_initial_offsets_version_is_rejected(kafka_bootstrap: str, topic: str,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "sources" / "0"
    folder.mkdir(parents=True)
    (folder / "0").write_text('v9\n{"t":{"0":1}}')
    with pytest.raises(CheckpointCorruptError, match="v9"):
        make_source(kafka_bootstrap, tmp_path, subscribe=topic).initial_offset()


def test_new_topics_matching_the_pattern_are_read_from_their_start(kafka_bootstrap: str) -> None:
    prefix = unique_topic("pat")
    create_topic(kafka_bootstrap, f"{prefix}-a")
    produce_records(kafka_bootstrap, f"{prefix}-a", [b"x0", b"x1"])
    source = make_source(kafka_bootstrap, subscribePattern=f"{prefix}-.*",
                         startingOffsets="latest")
    start = source.initial_offset()
    create_topic(kafka_bootstrap, f"{prefix}-b")
    produce_records(kafka_bootstrap, f"{prefix}-b", [b"y0", b"y1", b"y2"])
    end = source.latest_offset(start)
    assert end == {f"{prefix}-a": {"0": 2}, f"{prefix}-b": {"0": 3}}
    assert values(read_all(source, start, end)) == [b"y0", b"y1", b"y2"]


@pytest.fixture
def recreated(kafka_bootstrap: str) -> tuple[str, dict[str, dict[str, int]]]:
    """A topic read up to offset 10, then deleted and recreated with 3 records."""
    name = unique_topic("lost")
    create_topic(kafka_bootstrap, name)
    produce_records(kafka_bootstrap, name, [b"old%d" % i for i in range(10)])
    delete_topic(kafka_bootstrap, name)
    create_topic(kafka_bootstrap, name)
    produce_records(kafka_bootstrap, name, [b"new0", b"new1", b"new2"])
    return name, {name: {"0": 10}}


def test_lost_offsets_fail_the_query_naming_topic_partition_and_offsets(
        kafka_bootstrap: str, recreated: tuple[str, Any]) -> None:
    name, start = recreated
    source = make_source(kafka_bootstrap, subscribe=name)
    with pytest.raises(KafkaDataLossError, match=rf"{name}-0.*from 10 to 3.*failOnDataLoss"):
        source.latest_offset(start)
    part = KafkaInputPartition(name, 0, 5, 8, client_config(
        {"kafka.bootstrap.servers": kafka_bootstrap}) | _READ_CONF, poll_timeout_ms=10_000)
    with pytest.raises(KafkaDataLossError, match=rf"{name}-0 ends at offset 3"):
        part.read()


_READ_CONF = {"group.id": "unbounded-test", "enable.partition.eof": "true",
              "auto.offset.reset": "error", "enable.auto.commit": "false"}


def test_lost_offsets_are_logged_and_skipped_without_fail_on_data_loss(
        kafka_bootstrap: str, recreated: tuple[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    name, start = recreated
    source = make_source(kafka_bootstrap, subscribe=name, failOnDataLoss="false")
    with caplog.at_level(logging.WARNING):
        end = source.latest_offset(start)
        table = read_all(source, start, end)
    assert end == {name: {"0": 3}}
    assert values(table) == [b"new0", b"new1", b"new2"]
    assert f"{name}-0" in caplog.text
    assert "data may have been lost" in caplog.text


def test_max_offsets_per_trigger_shares_the_limit_by_backlog(kafka_bootstrap: str,
                                                             topic: str) -> None:
    source = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest",
                         maxOffsetsPerTrigger="6")
    first = source.latest_offset(None)
    assert first == {topic: {"0": 4, "1": 2}}
    assert source.latest_offset(first, respect_limits=False) == {topic: {"0": 10, "1": 5}}
    assert rate_limit({("t", 0): 0}, {("t", 0): 3}, 10) == {("t", 0): 3}


def test_min_offsets_per_trigger_waits_for_enough_data_or_the_delay(kafka_bootstrap: str,
                                                                    topic: str) -> None:
    patient = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest",
                          minOffsetsPerTrigger="100", maxTriggerDelay="1h")
    start = patient.initial_offset()
    assert patient.latest_offset(start) == start
    impatient = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest",
                            minOffsetsPerTrigger="100", maxTriggerDelay="0")
    assert impatient.latest_offset(start) == {topic: {"0": 10, "1": 5}}


def test_headers_and_timestamps_are_read(kafka_bootstrap: str) -> None:
    name = unique_topic("hdr")
    create_topic(kafka_bootstrap, name)
    produce_records(kafka_bootstrap, name, [b"v"], key=b"k", headers=[("h", b"1")],
                    timestamp_ms=1_700_000_000_123)
    source = make_source(kafka_bootstrap, subscribe=name, startingOffsets="earliest",
                         includeHeaders="true")
    row = read_all(source, None, source.latest_offset(None)).to_pylist()[0]
    assert row["key"] == b"k"
    assert row["headers"] == [{"key": "h", "value": b"1"}]
    assert int(row["timestamp"].timestamp() * 1000) == 1_700_000_000_123
    assert source.schema.names[-1] == "headers"


def test_transaction_markers_inside_a_range_do_not_stall_the_read(kafka_bootstrap: str) -> None:
    name = unique_topic("txn")
    create_topic(kafka_bootstrap, name)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": name})
    producer.init_transactions(10)
    for txn in range(3):
        producer.begin_transaction()
        for i in range(4):
            producer.produce(name, b"t%d-%d" % (txn, i))
        producer.commit_transaction(10)
    # No range here needs to wait for a marker's offset: one that did would fail with
    # KafkaUnavailableError after this poll timeout (a clock bound would flake under load).
    source = make_source(kafka_bootstrap, subscribe=name, startingOffsets="earliest",
                         minPartitions="3", **{"kafkaConsumer.pollTimeoutMs": "20000"})
    end = source.latest_offset(None)
    assert end == {name: {"0": 15}}  # 12 records and 3 commit markers
    table = read_all(source, None, end)
    assert len(table) == 12
    assert values(read_all(source, {name: {"0": 5}}, {name: {"0": 10}})) == [
        b"t1-0", b"t1-1", b"t1-2", b"t1-3"]


def test_min_partitions_splits_ranges_and_partitions_pickle(kafka_bootstrap: str,
                                                            topic: str) -> None:
    source = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest",
                         minPartitions="5", **{"kafka.sasl.password": "pw-hunter2"})
    parts = source.partitions(None, {topic: {"0": 10, "1": 5}})
    assert len(parts) >= 5
    shipped = [pickle.loads(pickle.dumps(p)) for p in parts]
    assert "pw-hunter2" not in repr(shipped)
    del shipped  # SASL settings would not connect to the plain test broker


def test_options_are_validated_before_start(kafka_bootstrap: str) -> None:
    cases: list[dict[str, str]] = [
        {"subscribe": "t"},
        {"kafka.bootstrap.servers": kafka_bootstrap},
        {"kafka.bootstrap.servers": kafka_bootstrap, "subscribe": "t", "assign": "{}"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "subscribe": "t",
         "kafka.auto.offset.reset": "earliest"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "subscribe": "t",
         "startingOffsets": "yesterday"},
        {"kafka.bootstrap.servers": kafka_bootstrap, "assign": "[0]"},
    ]
    for options in cases:
        with pytest.raises(AnalysisException):
            KafkaSource("kafka", SourceContext(options, None, None))


def test_secrets_reach_the_client_but_not_descriptions_or_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="alice" password="s3cr3t-jaas";')
    options = {"kafka.bootstrap.servers": f"127.0.0.1:{_closed_port()}", "subscribe": "t",
               "kafka.security.protocol": "SASL_PLAINTEXT", "kafka.sasl.mechanism": "PLAIN",
               "kafka.sasl.jaas.config": jaas, "kafka.ssl.key.password": "s3cr3t-key",
               "kafkaConsumer.pollTimeoutMs": "1500"}
    config = client_config(options)
    assert config["sasl.username"] == "alice"
    assert config["sasl.password"] == "s3cr3t-jaas"
    assert config["ssl.key.password"] == "s3cr3t-key"
    source = KafkaSource("kafka", SourceContext(options, None, None))
    assert REDACTED in source.description
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(KafkaUnavailableError) as failure:
        source.latest_offset(None)
    assert time.monotonic() - started < 20
    message = str(failure.value)
    assert options["kafka.bootstrap.servers"] in message
    assert "kafkaConsumer.pollTimeoutMs" in message
    for text in (source.description, caplog.text, message):
        assert "s3cr3t" not in text


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_paused_broker_is_waited_for_and_past_the_timeout_fails_clearly(
        kafka_broker_process: Any) -> None:
    bootstrap = kafka_broker_process.bootstrap
    name = unique_topic("pause")
    create_topic(bootstrap, name)
    produce_records(bootstrap, name, [b"r0", b"r1"])
    patient = make_source(bootstrap, subscribe=name, startingOffsets="earliest",
                          **{"kafkaConsumer.pollTimeoutMs": "20000"})
    end = patient.latest_offset(None)
    kafka_broker_process.pause()
    resume = threading.Timer(1.5, kafka_broker_process.resume)
    resume.start()
    try:
        assert values(read_all(patient, None, end)) == [b"r0", b"r1"]
    finally:
        resume.join()
    impatient = make_source(bootstrap, subscribe=name, startingOffsets="earliest",
                            **{"kafkaConsumer.pollTimeoutMs": "1000"})
    kafka_broker_process.pause()
    try:
        with pytest.raises(KafkaUnavailableError, match=r"kafkaConsumer\.pollTimeoutMs"):
            read_all(impatient, None, end)
    finally:
        kafka_broker_process.resume()


def test_read_committed_consumer_sees_what_the_source_reads(kafka_bootstrap: str,
                                                            topic: str) -> None:
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "check",
                         "enable.partition.eof": "true"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = [m.value() for m in consumer.consume(11, timeout=5) if m.error() is None]
    consumer.close()
    source = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest")
    table = read_all(source, None, {topic: {"0": 10, "1": 0}})
    assert values(table) == seen
    assert os.environ.get("UNBOUNDED_FAULT") is None


def test_consecutive_ranges_read_exactly_once_across_new_records(
        kafka_bootstrap: str, topic: str) -> None:
    """A partition's consumer kept from one batch is reused by the next only at the exact
    offset it stopped; records produced in between arrive in the next range, once."""
    source = make_source(kafka_bootstrap, subscribe=topic, startingOffsets="earliest")
    try:
        first = read_all(source, {topic: {"0": 0, "1": 0}}, {topic: {"0": 10, "1": 5}})
        produce_records(kafka_bootstrap, topic, [b"c%d" % i for i in range(4)], partition=0)
        second = read_all(source, {topic: {"0": 10, "1": 5}}, {topic: {"0": 14, "1": 5}})
        again = read_all(source, {topic: {"0": 8, "1": 3}}, {topic: {"0": 12, "1": 5}})
        third = read_all(source, {topic: {"0": 12, "1": 5}}, {topic: {"0": 14, "1": 5}})
    finally:
        source.stop()
    assert values(first) == [b"a%d" % i for i in range(10)] + [b"b%d" % i for i in range(5)]
    assert values(second) == [b"c0", b"c1", b"c2", b"c3"]
    assert values(again) == [b"a8", b"a9", b"c0", b"c1", b"b3", b"b4"]
    assert values(third) == [b"c2", b"c3"]
