"""The Kafka source's initial offsets (``sources/<i>/0``) carry a checksum like every other
checkpoint file: a flipped bit, a truncation or a deleted checksum is refused naming the
file, where a damaged offset used to be read and the query started from it silently;
a file Spark wrote (no checksum) is still read."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")

from unbounded.checkpoint.checksum import sidecar_path
from unbounded.errors import CheckpointCorruptError
from unbounded.sources.base import SourceContext
from unbounded.sources.kafka import KafkaSource
from unbounded.testing.broker import create_topic, produce_records, unique_topic


@pytest.fixture
def started(kafka_bootstrap: str, tmp_path: Path) -> tuple[str, str, Path]:
    """A topic with 3 records and a checkpoint whose source resolved its start."""
    topic = unique_topic("checked-start")
    create_topic(kafka_bootstrap, topic, partitions=1)
    produce_records(kafka_bootstrap, topic, [b"a", b"b", b"c"], partition=0)
    assert _source(kafka_bootstrap, tmp_path, topic).initial_offset() == {topic: {"0": 3}}
    return kafka_bootstrap, topic, tmp_path / "sources" / "0" / "0"


def _source(bootstrap: str, root: Path, topic: str) -> KafkaSource:
    options = {"kafka.bootstrap.servers": bootstrap, "subscribe": topic,
               "startingOffsets": "latest"}
    return KafkaSource("kafka", SourceContext(options, None, str(root / "sources" / "0")))


def _refused(started: tuple[str, str, Path], *message: str) -> None:
    bootstrap, topic, path = started
    with pytest.raises(CheckpointCorruptError) as e:
        _source(bootstrap, path.parent.parent.parent, topic).initial_offset()
    assert str(path) in str(e.value)
    for part in message:
        assert part in str(e.value)


def test_a_flipped_bit_anywhere_in_the_initial_offsets_is_refused(started) -> None:
    path = started[2]
    intact = path.read_bytes()
    assert intact == f'v1\n{{"{started[1]}":{{"0":3}}}}'.encode()
    for offset in range(len(intact)):
        damaged = bytearray(intact)
        damaged[offset] ^= 1 << (offset % 8)
        path.write_bytes(bytes(damaged))
        _refused(started, "CRC-32C")


def test_truncated_or_empty_initial_offsets_are_refused(started) -> None:
    path = started[2]
    intact = path.read_bytes()
    for damaged in (b"", intact[:3], intact[:-1]):
        path.write_bytes(damaged)
        _refused(started, f"expected {len(intact)} bytes")


def test_initial_offsets_whose_checksum_was_deleted_are_refused(started) -> None:
    Path(sidecar_path(str(started[2]))).unlink()
    _refused(started, "no checksum file", "accept_unverified")


def test_initial_offsets_spark_wrote_without_a_checksum_are_read(kafka_bootstrap: str,
                                                                 tmp_path: Path) -> None:
    topic = unique_topic("spark-start")
    create_topic(kafka_bootstrap, topic, partitions=1)
    folder = tmp_path / "sources" / "0"
    folder.mkdir(parents=True)
    (folder / "0").write_text(f'v1\n{{"{topic}":{{"0":1}}}}')
    assert _source(kafka_bootstrap, tmp_path, topic).initial_offset() == {topic: {"0": 1}}
