"""The wire reader (Kafka Fetch requests, batches decoded to Arrow) against a real broker:
the same rows as the librdkafka reader, transactions, a paused broker, lost offsets.

The broker is tansu (or ``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``); see ``unbounded.testing.broker``
for its gaps. Ranges are given explicitly, so tansu's ListOffsets quirk does not matter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Producer

from kafka_fixtures import PausableBroker
from unbounded._kafka import fetch
from unbounded.errors import KafkaDataLossError, KafkaUnavailableError
from unbounded.sources.base import SourceContext
from unbounded.sources.kafka import _POOL, KafkaInputPartition, KafkaSource
from unbounded.testing.broker import (
    create_topic,
    delete_topic,
    produce_records,
    unique_topic,
)

pytestmark = pytest.mark.timeout(90)

RECORDS = 300


@pytest.fixture(autouse=True)
def _close_kept_clients() -> Iterator[None]:
    """Partitions are read without a query here, so nothing else closes kept clients."""
    yield
    fetch.close_clients()
    _POOL.close()


def _partition(bootstrap: str, topic: str, start: int, end: int,
               **options: str) -> KafkaInputPartition:
    """The source's task for offsets ``[start, end)`` of partition 0, on the wire."""
    opts = {"kafka.bootstrap.servers": bootstrap, "assign": json.dumps({topic: [0]}),
            "reader": "wire", **options}
    source = KafkaSource("kafka", SourceContext(opts, None, None))
    [part] = source.partitions({topic: {"0": start}}, {topic: {"0": end}})
    assert isinstance(part, KafkaInputPartition) and part.uses_wire
    return part


def _both(part: KafkaInputPartition) -> tuple[pa.Table, pa.Table]:
    librdkafka = dataclasses.replace(part, reader="librdkafka")
    assert not librdkafka.uses_wire
    return part.read(), librdkafka.read()


def _record(i: int) -> dict[str, Any]:
    """Keys, values and headers null, empty or set; explicit and producer timestamps."""
    headers = [None, [("a", b"1"), ("b", None)], [("x", b"")], [("h", b"v%d" % i)]][i % 4]
    extra: dict[str, Any] = {"timestamp": 1_700_000_000_000 + i} if i % 5 else {}
    return {"key": None if i % 3 == 0 else b"k%d" % i,
            "value": None if i % 7 == 0 else b"value-%d" % i,
            "headers": headers, **extra}


@pytest.fixture(scope="module")
def mixed_topic(kafka_bootstrap: str) -> str:
    """``RECORDS`` varied records in a few batches of many records each."""
    topic = unique_topic("wire-mixed")
    create_topic(kafka_bootstrap, topic)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 200})
    for i in range(RECORDS):
        producer.produce(topic, partition=0, **_record(i))
        if i % 100 == 99:
            assert producer.flush(15) == 0
    assert producer.flush(15) == 0
    return topic


class _BlobSpy:
    """Wraps ``decode_batches`` and keeps the base offsets of the batches it decodes."""

    def __init__(self, decode: Any) -> None:
        self.decode = decode
        self.bases: set[int] = set()

    def __call__(self, blob: bytes, *args: Any, **kwargs: Any) -> Any:
        pos = 0
        while pos + 12 <= len(blob):
            base, length = struct.unpack_from(">qi", blob, pos)
            self.bases.add(base)
            pos += 12 + length
        return self.decode(blob, *args, **kwargs)


@pytest.mark.parametrize("include_headers", [True, False])
@pytest.mark.parametrize(("start", "end"), [(0, RECORDS), (37, RECORDS), (0, 181), (37, 181)])
def test_a_range_read_on_the_wire_equals_the_librdkafka_read(
        kafka_bootstrap: str, mixed_topic: str, monkeypatch: pytest.MonkeyPatch,
        include_headers: bool, start: int, end: int) -> None:
    spy = _BlobSpy(fetch.decode_batches)
    monkeypatch.setattr(fetch, "decode_batches", spy)
    part = _partition(kafka_bootstrap, mixed_topic, start, end,
                      includeHeaders=str(include_headers).lower())
    wire, librdkafka = _both(part)
    assert wire.equals(librdkafka)
    assert wire.column("offset").to_pylist() == list(range(start, end))
    assert wire.column("value").to_pylist() == [_record(i)["value"] for i in range(start, end)]
    assert len(spy.bases) < 10, "the records were meant to share batches"
    assert start == 0 or start not in spy.bases, "the range was meant to start inside a batch"
    assert end == RECORDS or end not in spy.bases, "the range was meant to end inside a batch"
    if include_headers:
        assert wire.column("headers").to_pylist() == [
            [{"key": k, "value": v} for k, v in _record(i)["headers"] or []] or None
            for i in range(start, end)]


def test_timestamps_and_types_are_the_producers(kafka_bootstrap: str, mixed_topic: str) -> None:
    wire = _partition(kafka_bootstrap, mixed_topic, 1, 5).read()
    stamps = [int(t.timestamp() * 1000) for t in wire.column("timestamp").to_pylist()]
    assert stamps == [1_700_000_000_000 + i for i in range(1, 5)]
    assert wire.column("timestampType").to_pylist() == [0] * 4
    assert wire.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def _transactions(bootstrap: str, topic: str, count: int, size: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic})
    producer.init_transactions(10)
    for txn in range(count):
        producer.begin_transaction()
        for i in range(size):
            producer.produce(topic, b"t%d-%d" % (txn, i), partition=0)
        producer.commit_transaction(10)


def test_committed_transactions_are_read_across_their_commit_markers(
        kafka_bootstrap: str) -> None:
    """Each commit marker takes an offset: 3 transactions of 4 records fill offsets 0-14,
    with markers at 4, 9 and 14. Ranges that end on or right after a marker finish."""
    topic = unique_topic("wire-txn")
    create_topic(kafka_bootstrap, topic)
    _transactions(kafka_bootstrap, topic, 3, 4)
    produce_records(kafka_bootstrap, topic, [b"plain"])
    # A record follows every marker, so no range needs to wait: one that waited for a
    # marker's offset would fail with KafkaUnavailableError after this poll timeout.
    patience = {"kafkaConsumer.pollTimeoutMs": "20000"}
    for start, end in [(0, 16), (0, 15), (5, 10), (3, 5), (4, 5), (9, 11)]:
        wire, librdkafka = _both(_partition(kafka_bootstrap, topic, start, end, **patience))
        assert wire.equals(librdkafka), (start, end)
    everything = _partition(kafka_bootstrap, topic, 0, 16).read()
    assert everything.column("offset").to_pylist() == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12,
                                                       13, 15]
    assert _partition(kafka_bootstrap, topic, 4, 5).read().num_rows == 0


def test_a_topic_created_while_its_range_is_read_is_waited_for(kafka_bootstrap: str) -> None:
    """Unknown partitions refresh the metadata and retry until the poll timeout."""
    topic = unique_topic("wire-late")
    part = _partition(kafka_bootstrap, topic, 0, 3, **{"kafkaConsumer.pollTimeoutMs": "20000"})
    result: list[pa.Table] = []
    reader = threading.Thread(target=lambda: result.append(part.read()))
    reader.start()
    time.sleep(1.0)
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, [b"l0", b"l1", b"l2"])
    reader.join(30)
    assert not reader.is_alive()
    assert result[0].column("value").to_pylist() == [b"l0", b"l1", b"l2"]


def test_consecutive_ranges_reuse_the_kept_connection(
        kafka_bootstrap: str, mixed_topic: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    original = fetch._Client.__init__

    def counting(self: Any, settings: Any) -> None:
        made.append(self)
        original(self, settings)

    monkeypatch.setattr(fetch._Client, "__init__", counting)
    part = _partition(kafka_bootstrap, mixed_topic, 0, 10)
    tables = [dataclasses.replace(part, from_offset=f, until_offset=f + 10).read()
              for f in (0, 10, 20)]
    assert [t.num_rows for t in tables] == [10, 10, 10]
    assert len(made) == 1


# ---------------------------------------------------------------- a paused broker


@contextmanager
def _paused(broker: PausableBroker) -> Iterator[None]:
    broker.pause()  # returns once every broker thread has stopped
    try:
        yield
    finally:
        broker.resume()


def test_a_broker_paused_shorter_than_the_poll_timeout_is_waited_for(
        kafka_broker_process: PausableBroker) -> None:
    bootstrap, topic = kafka_broker_process.bootstrap, unique_topic("wire-pause")
    create_topic(bootstrap, topic)
    produce_records(bootstrap, topic, [b"r%d" % i for i in range(6)])
    part = _partition(bootstrap, topic, 0, 3, **{"kafkaConsumer.pollTimeoutMs": "15000"})
    assert part.read().num_rows == 3  # connected; the client is kept for the next range
    with _paused(kafka_broker_process):
        resume = threading.Timer(1.5, kafka_broker_process.resume)
        resume.start()
        started = time.monotonic()
        try:
            table = dataclasses.replace(part, from_offset=3, until_offset=6).read()
        finally:
            resume.join()
    assert table.column("value").to_pylist() == [b"r3", b"r4", b"r5"]
    assert time.monotonic() - started >= 1.0


def test_a_broker_paused_past_the_poll_timeout_fails_naming_it_and_the_option(
        kafka_broker_process: PausableBroker) -> None:
    bootstrap, topic = kafka_broker_process.bootstrap, unique_topic("wire-stop")
    create_topic(bootstrap, topic)
    produce_records(bootstrap, topic, [b"r%d" % i for i in range(6)])
    kept = _partition(bootstrap, topic, 0, 3, **{"kafkaConsumer.pollTimeoutMs": "1000"})
    assert kept.read().num_rows == 3
    fresh = _partition(bootstrap, topic, 0, 3, **{"kafkaConsumer.pollTimeoutMs": "1000"})
    with _paused(kafka_broker_process):
        for part in (dataclasses.replace(kept, from_offset=3, until_offset=6), fresh):
            started = time.monotonic()
            with pytest.raises(KafkaUnavailableError) as failure:
                part.read()
            elapsed = time.monotonic() - started  # a bound the machine's load cannot reach:
            assert 1.0 <= elapsed < 60, "the option (1 s), not the default (120 s), ended it"
            message = str(failure.value)
            assert bootstrap in message
            assert "kafkaConsumer.pollTimeoutMs" in message
            assert f"{topic}-0" in message


# ---------------------------------------------------------------- lost offsets


@pytest.fixture
def recreated(kafka_bootstrap: str) -> str:
    """A topic that held 10 records, deleted and recreated with 3."""
    topic = unique_topic("wire-lost")
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, [b"old%d" % i for i in range(10)])
    delete_topic(kafka_bootstrap, topic)
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, [b"new0", b"new1", b"new2"])
    return topic


def test_a_range_past_the_end_of_a_recreated_topic_fails_naming_it(
        kafka_bootstrap: str, recreated: str) -> None:
    for start in (5, 1):
        part = _partition(kafka_bootstrap, recreated, start, 8)
        with pytest.raises(KafkaDataLossError,
                           match=rf"{recreated}-0 ends at offset 3.*{max(start, 3)} to 8"
                                 r".*failOnDataLoss"):
            part.read()


def test_a_range_past_the_end_of_a_recreated_topic_is_logged_and_cut_without_fail_on_data_loss(
        kafka_bootstrap: str, recreated: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        beyond = _partition(kafka_bootstrap, recreated, 5, 8, failOnDataLoss="false").read()
        partly = _partition(kafka_bootstrap, recreated, 1, 8, failOnDataLoss="false").read()
    assert beyond.num_rows == 0
    assert partly.column("value").to_pylist() == [b"new1", b"new2"]
    assert f"{recreated}-0 ends at offset 3" in caplog.text
    assert "failOnDataLoss is false" in caplog.text
