"""The wire reader's connections receive through ``unbounded._kafka.frames`` (1 MiB reads,
one copy into each frame) against a real broker, and read every record of a range that
spans many reads and several Fetch responses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("confluent_kafka")

from unbounded._kafka import fetch
from unbounded._kafka.frames import _FrameParser, _FrameTransport
from unbounded.sources.kafka import kafka_schema
from unbounded.testing.broker import create_topic, produce_records

RECORDS = 3_000
VALUE = 1_000  # 3 MB in all: several 1 MiB reads


@pytest.fixture(autouse=True)
def _close_kept_clients() -> Iterator[None]:
    yield
    fetch.close_clients()


def _kept_connections() -> list[object]:
    clients = [c for idle in fetch._POOL._idle.values() for c in idle]
    conns: list[object] = []
    for client in clients:
        conns += client._manager._conns.values()
    return conns


def test_a_range_over_many_reads_and_fetches_arrives_whole_through_frame_parsers(
        kafka_bootstrap: str) -> None:
    topic = f"frames-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic)
    values = [str(i).encode().ljust(VALUE, b".") for i in range(RECORDS)]
    produce_records(kafka_bootstrap, topic, values)
    config = {"bootstrap.servers": kafka_bootstrap, "max.partition.fetch.bytes": "400000"}
    spec = fetch.FetchRange(topic, 0, 0, RECORDS, config, kafka_schema().to_arrow_schema())
    table = fetch.read_range(spec, lambda message: None)
    assert table.column("value").to_pylist() == values
    assert table.column("offset").to_pylist() == list(range(RECORDS))
    conns = _kept_connections()
    assert conns
    for conn in conns:
        assert type(conn.parser) is _FrameParser  # type: ignore[attr-defined]
        assert type(conn.transport) is _FrameTransport  # type: ignore[attr-defined]

