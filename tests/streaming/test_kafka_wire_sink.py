"""The wire-protocol transactional producer and the Kafka sink that uses it, against a
real broker.

tansu 0.6.0 hands aborted records to ``read_committed`` consumers, so wherever a
transaction may have aborted the committed records are judged from the raw log
(:func:`read_log`): a transactional batch counts only when its producer's next control
batch is a COMMIT marker. Topics without aborts are read with a consumer.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, TopicPartition

from kafka_fixtures import PausableBroker
from unbounded._kafka.records import HEADERS_ARROW
from unbounded._kafka.transactions import ProducerSettings, TransactionalProducer
from unbounded.errors import AnalysisException, ConcurrentQueryError, KafkaUnavailableError
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.kafka import KafkaSink
from unbounded.testing.broker import create_topic, unique_topic

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.net import KafkaConnectionManager, NetworkSelector
    from kafka.partitioner import murmur2
    from kafka.protocol.consumer import FetchRequest
    from kafka.record import MemoryRecords

pytestmark = pytest.mark.timeout(120)
WRITERS = ["wire", "librdkafka"]


# ---------------------------------------------------------------- reading back


@dataclass
class LogBatch:
    """One record batch of a partition log, as stored."""

    producer_id: int
    epoch: int
    base_sequence: int
    transactional: bool
    commit_marker: bool | None  # for control batches: COMMIT (True) or ABORT (False)
    values: list[bytes | None] = field(default_factory=list)


@dataclass
class Judged:
    committed: list[bytes | None] = field(default_factory=list)
    aborted: list[bytes | None] = field(default_factory=list)
    open: list[bytes | None] = field(default_factory=list)


def _fetch_blob(manager: Any, net: Any, topic: str, partition: int,
                offset: int) -> tuple[bytes, int]:
    part = FetchRequest.FetchTopic.FetchPartition(partition=partition, fetch_offset=offset,
                                                  partition_max_bytes=8 << 20)
    request = FetchRequest(max_wait_ms=100, min_bytes=1, max_bytes=8 << 20, isolation_level=0,
                           topics=[FetchRequest.FetchTopic(topic=topic, partitions=[part])],
                           forgotten_topics_data=[], min_version=4, max_version=12)
    future = manager.send(request, node_id=manager.cluster.brokers()[0].node_id)
    net.poll(timeout_ms=10_000, future=future)
    assert future.succeeded(), future.exception
    data = future.value.responses[0].partitions[0]
    assert data.error_code == 0, f"Fetch of {topic}-{partition} failed: {data.error_code}"
    return bytes(data.records or b""), data.high_watermark


def _parse(blob: bytes) -> list[tuple[LogBatch, int]]:
    out = []
    records = MemoryRecords(blob)
    while (batch := records.next_batch()) is not None:
        items = list(batch)
        marker = (not items[0].abort) if batch.is_control_batch else None
        out.append((LogBatch(batch.producer_id, batch.producer_epoch, batch.base_sequence,
                             batch.is_transactional, marker,
                             [] if batch.is_control_batch else [r.value for r in items]),
                    items[-1].offset + 1))
    return out


def read_log(bootstrap: str, topic: str, partition: int) -> list[LogBatch]:
    """Every batch of ``topic``-``partition`` (Fetch, read_uncommitted), in log order."""
    net = NetworkSelector()
    manager = KafkaConnectionManager(net, bootstrap_servers=bootstrap)
    try:
        manager.bootstrap(10_000)
        batches: list[LogBatch] = []
        offset, high = 0, 1
        while offset < high:
            blob, high = _fetch_blob(manager, net, topic, partition, offset)
            parsed = _parse(blob)
            assert parsed or offset >= high, f"no progress at {topic}-{partition}@{offset}"
            for batch, next_offset in parsed:
                batches.append(batch)
                offset = max(offset, next_offset)
        return batches
    finally:
        manager.close()
        net.close()


def judge(batches: list[LogBatch]) -> Judged:
    """Kafka's rule: a transactional record is committed iff its producer's next
    control batch is a COMMIT marker."""
    out = Judged()
    pending: dict[int, list[bytes | None]] = {}
    for batch in batches:
        if batch.commit_marker is not None:
            target = out.committed if batch.commit_marker else out.aborted
            target.extend(pending.pop(batch.producer_id, []))
        elif batch.transactional:
            pending.setdefault(batch.producer_id, []).extend(batch.values)
        else:
            out.committed.extend(batch.values)
    for values in pending.values():
        out.open.extend(values)
    return out


def judged(bootstrap: str, topic: str, partitions: int) -> Judged:
    total = Judged()
    for p in range(partitions):
        one = judge(read_log(bootstrap, topic, p))
        total.committed += one.committed
        total.aborted += one.aborted
        total.open += one.open
    return total


def consume(bootstrap: str, topic: str, partitions: int) -> list[tuple[Any, ...]]:
    """(partition, key, value, headers) of every record, in log order per partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.partition.eof": "true"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[tuple[Any, ...]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    while len(at_end) < partitions and time.monotonic() < deadline:
        for m in consumer.consume(1000, timeout=0.2):
            if m.error() is None:
                found.append((m.partition(), m.key(), m.value(), m.headers()))
            else:
                at_end.add(m.partition())
    consumer.close()
    return found


def java_partition(key: bytes, partitions: int) -> int:
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


# ---------------------------------------------------------------- producers


def settings(bootstrap: str, **overrides: Any) -> ProducerSettings:
    return ProducerSettings(bootstrap, f"tid-{uuid.uuid4()}", **{"timeout_ms": 30_000,
                                                                  **overrides})


@contextmanager
def started(config: ProducerSettings) -> Iterator[TransactionalProducer]:
    producer = TransactionalProducer(config)
    try:
        producer.init_transactions()
        yield producer
    finally:
        producer.close()


def commit(producer: TransactionalProducer, table: pa.Table, topic: str | None,
           marker: int | None = None) -> None:
    producer.begin_transaction()
    producer.produce(table, topic)
    if marker is not None:
        producer.send_offsets_to_transaction("g-test", {("_markers", 0): marker})
    producer.commit_transaction()


def values(prefix: str, n: int) -> pa.Table:
    return pa.table({"value": pa.array([f"{prefix}-{i}" for i in range(n)], pa.string())})


# ---------------------------------------------------------------- the producer


@pytest.mark.parametrize("compression", [None, "lz4"])
def test_records_read_back_as_written_with_keys_headers_partitions_and_topics(
        kafka_bootstrap: str, compression: str | None) -> None:
    first, second = unique_topic("wire-a"), unique_topic("wire-b")
    create_topic(kafka_bootstrap, first, partitions=3)
    create_topic(kafka_bootstrap, second, partitions=2)
    n = 400
    keys = [None if i % 5 == 0 else f"key-{i % 37}".encode() for i in range(n)]
    parts = [i % 3 if i % 7 == 0 else None for i in range(n)]
    headers = [None if i % 4 == 0 else [{"key": f"h{j}", "value": f"{i}.{j}".encode()}
                                        for j in range(i % 3)] for i in range(n)]
    table = pa.table({
        "value": pa.array([None if i == 3 else f"v{i}".encode() for i in range(n)]),
        "key": pa.array(keys, pa.large_binary()),
        "topic": pa.array([first if i % 2 else second for i in range(n)]),
        "partition": pa.array([p if p is None or i % 2 else p % 2 for i, p in enumerate(parts)],
                              pa.int32()),
        "headers": pa.array(headers, HEADERS_ARROW),
    })
    with started(settings(kafka_bootstrap, batch_bytes=2_000, compression=compression)) as p:
        commit(p, table, None)
    for topic, count in ((first, 3), (second, 2)):
        rows = [r for r in table.to_pylist() if r["topic"] == topic]
        got = consume(kafka_bootstrap, topic, count)
        where = {value: part for part, _, value, _ in got}  # values are unique
        sticky = {where[r["value"]] for r in rows if r["partition"] is None and not r["key"]}
        assert len(sticky) == 1, "a small keyless table stays on one partition"
        for part in range(count):
            wanted = [(part, r["key"], r["value"],
                       [(h["key"], h["value"]) for h in r["headers"] or []] or None)
                      for r in rows if _expected_partition(r, count, sticky) == part]
            assert [g for g in got if g[0] == part] == wanted, (topic, part)
        assert len(got) == len(rows)


def _expected_partition(row: dict[str, Any], count: int, sticky: set[int]) -> int:
    if row["partition"] is not None:
        return int(row["partition"])
    return java_partition(row["key"], count) if row["key"] else next(iter(sticky))


def test_an_aborted_transaction_leaves_no_committed_records(kafka_bootstrap: str) -> None:
    topic = unique_topic("wire-abort")
    create_topic(kafka_bootstrap, topic, partitions=2)
    with started(settings(kafka_bootstrap, batch_bytes=1_000)) as p:
        p.begin_transaction()
        p.produce(values("aborted", 300), topic)
        p.send_offsets_to_transaction("g-test", {("_markers", 0): 1})
        p.abort_transaction()
        commit(p, values("kept", 200), topic)
    log = judged(kafka_bootstrap, topic, 2)
    assert sorted(log.committed) == sorted(f"kept-{i}".encode() for i in range(200))
    assert Counter(log.aborted) == Counter(f"aborted-{i}".encode() for i in range(300))
    assert not log.open


def test_a_failure_mid_produce_waits_for_sent_batches_before_the_abort(
        kafka_bootstrap: str) -> None:
    topic = unique_topic("wire-midfail")
    create_topic(kafka_bootstrap, topic)
    n = 400
    headers = [[{"key": "h", "value": b"v"}]] * (n - 1) + [[None]]  # the last one is invalid
    table = values("doomed", n).append_column("headers", pa.array(headers, HEADERS_ARROW))
    config = settings(kafka_bootstrap, batch_bytes=1_000)
    with started(config) as p:
        p.begin_transaction()
        with pytest.raises(ValueError, match="header"):
            p.produce(table, topic)
        p.abort_transaction()  # safe: every batch sent was answered first
        with pytest.raises(Exception, match="init_transactions"):
            p.begin_transaction()
        p.init_transactions()
        commit(p, values("next", 5), topic)
    log = judged(kafka_bootstrap, topic, 1)
    assert sorted(log.committed) == [f"next-{i}".encode() for i in range(5)]
    assert log.aborted, "batches sent before the failure were written, then aborted"
    assert not log.open


def test_a_second_producer_with_the_same_id_fences_the_first(kafka_bootstrap: str) -> None:
    topic = unique_topic("wire-fence")
    create_topic(kafka_bootstrap, topic, partitions=2)
    config = settings(kafka_bootstrap)
    with started(config) as zombie:
        zombie.begin_transaction()
        zombie.produce(values("zombie", 50), topic)
        with started(config) as successor:
            assert (successor.producer_id, successor.epoch) != (zombie.producer_id,
                                                                zombie.epoch)
            with pytest.raises(ConcurrentQueryError, match="fenced"):
                zombie.send_offsets_to_transaction("g-test", {("_markers", 0): 1})
                zombie.commit_transaction()
            with pytest.raises(ConcurrentQueryError, match="fenced"):
                zombie.produce(values("zombie-late", 5), topic)
            commit(successor, values("successor", 20), topic, marker=1)
    log = judged(kafka_bootstrap, topic, 2)
    assert sorted(log.committed) == sorted(f"successor-{i}".encode() for i in range(20))
    assert not any(v.startswith(b"zombie") for v in log.committed if v)


def test_sequence_numbers_start_at_zero_and_continue_across_transactions(
        kafka_bootstrap: str) -> None:
    topic = unique_topic("wire-seq")
    create_topic(kafka_bootstrap, topic, partitions=2)
    sizes = [120, 1, 77]
    with started(settings(kafka_bootstrap, batch_bytes=600, max_in_flight=3)) as p:
        for i, n in enumerate(sizes):
            rows = values(f"t{i}", n).append_column("partition", pa.array([1] * n, pa.int8()))
            commit(p, rows, topic, marker=i + 1)
        assert p.next_sequence(topic, 1) == sum(sizes)
        producer_id, epoch = p.producer_id, p.epoch
    data = [b for b in read_log(kafka_bootstrap, topic, 1) if b.commit_marker is None]
    assert len(data) > len(sizes), "several batches per transaction"
    assert {(b.producer_id, b.epoch, b.transactional) for b in data} == {
        (producer_id, epoch, True)}
    expected, total = [], 0
    for b in data:
        expected.append(total)
        total += len(b.values)
    assert [b.base_sequence for b in data] == expected
    markers = [b.commit_marker for b in read_log(kafka_bootstrap, topic, 1)
               if b.commit_marker is not None]
    assert markers == [True] * len(sizes)
    assert len(judge(read_log(kafka_bootstrap, topic, 1)).committed) == sum(sizes)


def test_a_briefly_paused_broker_is_waited_for_and_the_transaction_commits(
        kafka_broker_process: PausableBroker) -> None:
    broker = kafka_broker_process
    topic = unique_topic("wire-pause")
    create_topic(broker.bootstrap, topic, partitions=2)
    config = settings(broker.bootstrap, batch_bytes=2_000, request_timeout_ms=1_000)
    with started(config) as p:
        p.begin_transaction()
        p.produce(values("before", 500), topic)
        broker.pause()
        resume = threading.Timer(2.5, broker.resume)
        resume.start()
        started_at = time.monotonic()
        try:
            p.produce(values("during", 2_000), topic)  # times out, reconnects, resends
            p.send_offsets_to_transaction("g-test", {("_markers", 0): 1})
            p.commit_transaction()
        finally:
            resume.cancel()
            broker.resume()
        assert time.monotonic() - started_at >= 2.0
    log = judged(broker.bootstrap, topic, 2)
    wanted = [f"before-{i}" for i in range(500)] + [f"during-{i}" for i in range(2_000)]
    assert Counter(log.committed) == Counter(v.encode() for v in wanted)
    assert not log.open


def test_a_broker_paused_past_the_timeout_fails_naming_it_and_the_option(
        kafka_broker_process: PausableBroker) -> None:
    broker = kafka_broker_process
    topic = unique_topic("wire-timeout")
    create_topic(broker.bootstrap, topic)
    with started(settings(broker.bootstrap, timeout_ms=1_500)) as p:
        p.begin_transaction()
        p.produce(values("x", 10), topic)
        broker.pause()
        try:
            with pytest.raises(KafkaUnavailableError) as failure:
                p.commit_transaction()
        finally:
            broker.resume()
    assert broker.bootstrap in str(failure.value)
    assert "kafkaProducer.timeoutMs" in str(failure.value)
    with started(settings(broker.bootstrap)) as p:  # the brokers serve the next producer
        commit(p, values("y", 3), topic)


# ---------------------------------------------------------------- the sink


def make_sink(bootstrap: str, query_id: str, **options: str) -> KafkaSink:
    opts = {"kafka.bootstrap.servers": bootstrap, **options}
    return KafkaSink("kafka", SinkContext(query_id, None, opts, "append", None))


def batch(batch_id: int, table: pa.Table) -> MicroBatch:
    return MicroBatch(batch_id, table.schema, [table])


@pytest.fixture
def out_topic(kafka_bootstrap: str) -> str:
    name = unique_topic("sink-out")
    create_topic(kafka_bootstrap, name, partitions=3)
    return name


@pytest.mark.parametrize("writer", WRITERS)
def test_the_sink_skips_a_replayed_batch_with_either_writer(
        kafka_bootstrap: str, out_topic: str, writer: str) -> None:
    query = f"q-{uuid.uuid4()}"
    first = make_sink(kafka_bootstrap, query, topic=out_topic, writer=writer)
    first.add_batch(0, batch(0, values("b0", 3)))
    first.add_batch(1, batch(1, values("b1", 2)))
    first.stop()
    restarted = make_sink(kafka_bootstrap, query, topic=out_topic, writer=writer)
    assert restarted.last_committed_batch() == 1
    restarted.add_batch(1, batch(1, values("b1", 2)))
    restarted.add_batch(2, batch(2, values("b2", 1)))
    restarted.stop()
    got = sorted(v for _, _, v, _ in consume(kafka_bootstrap, out_topic, 3))
    assert got == sorted(f"{b}-{i}".encode() for b, n in (("b0", 3), ("b1", 2), ("b2", 1))
                         for i in range(n))


@pytest.mark.parametrize("writer", WRITERS)
def test_a_new_sink_run_fences_the_previous_with_either_writer(
        kafka_bootstrap: str, out_topic: str, writer: str) -> None:
    query = f"q-{uuid.uuid4()}"
    zombie = make_sink(kafka_bootstrap, query, topic=out_topic, writer=writer)
    zombie.add_batch(0, batch(0, values("first", 1)))
    successor = make_sink(kafka_bootstrap, query, topic=out_topic, writer=writer)
    assert successor.last_committed_batch() == 0
    with pytest.raises(ConcurrentQueryError, match="fenced while writing batch 1"):
        zombie.add_batch(1, batch(1, values("zombie", 1)))
    successor.add_batch(1, batch(1, values("second", 1)))
    successor.stop()
    zombie.stop()
    log = judged(kafka_bootstrap, out_topic, 3)
    assert sorted(log.committed) == [b"first-0", b"second-0"]


@pytest.mark.parametrize("writer", WRITERS)
def test_keyed_rows_land_where_javas_partitioner_puts_them_with_either_writer(
        kafka_bootstrap: str, out_topic: str, writer: str) -> None:
    keys = [f"user-{i}" for i in range(60)]
    table = pa.table({"key": keys, "value": [f"v-{k}" for k in keys]})
    sink = make_sink(kafka_bootstrap, f"q-{uuid.uuid4()}", topic=out_topic, writer=writer)
    sink.add_batch(0, batch(0, table))
    sink.stop()
    got = consume(kafka_bootstrap, out_topic, 3)
    assert sorted((k, p) for p, k, _, _ in got) == sorted(
        (k.encode(), java_partition(k.encode(), 3)) for k in keys)


def test_a_row_for_a_missing_partition_fails_the_batch_and_the_next_one_commits(
        kafka_bootstrap: str, out_topic: str) -> None:
    sink = make_sink(kafka_bootstrap, f"q-{uuid.uuid4()}", topic=out_topic)
    bad = values("bad", 2).append_column("partition", pa.array([0, 7], pa.int32()))
    with pytest.raises(Exception, match="partition' is 7") as failure:
        sink.add_batch(0, batch(0, bad))
    assert failure.value.error_class == "KAFKA_TRANSACTION_FAILED"  # type: ignore[attr-defined]
    sink.add_batch(0, batch(0, values("good", 2)))
    sink.stop()
    assert sorted(judged(kafka_bootstrap, out_topic, 3).committed) == [b"good-0", b"good-1"]


def test_the_writer_is_wire_for_plaintext_and_librdkafka_for_tls_or_sasl() -> None:
    plain = make_sink("b:9092", "q", topic="t")
    assert "writer=wire" in plain.description
    sasl = make_sink("b:9092", "q", topic="t", **{"kafka.sasl.mechanism": "PLAIN"})
    assert "writer=librdkafka" in sasl.description
    tls = make_sink("b:9092", "q", topic="t", **{"kafka.security.protocol": "SSL"})
    assert "writer=librdkafka" in tls.description
    forced = make_sink("b:9092", "q", topic="t", writer="librdkafka")
    assert "writer=librdkafka" in forced.description
    plain_loud = make_sink("b:9092", "q", topic="t", writer="WIRE",
                           **{"kafka.security.protocol": "PLAINTEXT"})
    assert "writer=wire" in plain_loud.description
    at_least_once = make_sink("b:9092", "q", topic="t", deliveryGuarantee="at-least-once")
    assert "writer=librdkafka" in at_least_once.description


@pytest.mark.parametrize("options", [
    {"writer": "java"},
    {"writer": "wire", "kafka.security.protocol": "SASL_SSL"},
    {"writer": "wire", "kafka.ssl.ca.location": "/ca.pem"},
    {"writer": "wire", "deliveryGuarantee": "at-least-once"},
])
def test_an_impossible_writer_is_refused_with_the_fix(options: dict[str, str]) -> None:
    with pytest.raises(AnalysisException, match="writer"):
        make_sink("b:9092", "q", topic="t", **options)


def test_wire_settings_honour_the_producer_options() -> None:
    sink = make_sink("b:9092", "q", topic="t", **{
        "kafka.batch.size": "65536", "kafka.compression.type": "ZSTD",
        "kafka.transaction.timeout.ms": "9000", "kafka.client.id": "me",
        "kafka.max.in.flight.requests.per.connection": "9", "kafkaProducer.timeoutMs": "777"})
    got = sink._opts.wire_settings("tid")
    assert (got.batch_bytes, got.compression, got.transaction_timeout_ms) == (65536, "zstd",
                                                                              9000)
    assert (got.client_id, got.max_in_flight, got.timeout_ms) == ("me", 5, 777)
    capped = make_sink("b:9092", "q", topic="t", **{"kafka.message.max.bytes": "200000"})
    assert capped._opts.wire_settings("tid").batch_bytes == 200_000
    for bad in ({"kafka.batch.size": "big"}, {"kafka.compression.type": "brotli"}):
        with pytest.raises(AnalysisException, match="kafka"):  # before the query starts
            make_sink("b:9092", "q", topic="t", **bad)
