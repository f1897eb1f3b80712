"""The wire clients' response framing (``unbounded._kafka.frames``): responses split at any
byte boundary decode to what kafka-python's own parser gives, records intact."""

from __future__ import annotations

import warnings
from typing import Any

import pyarrow as pa
import pytest

from unbounded._kafka.frames import _Frame, _FrameParser, _FrameTransport
from unbounded._kafka.records import decode_batches, encode_batch, encode_batch_view

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.protocol.consumer import FetchRequest, FetchResponse
    from kafka.protocol.parser import KafkaProtocol
    from kafka.protocol.producer import ProduceRequest

BLOB = encode_batch(pa.array([f"v{i}".encode() for i in range(300)]), timestamp_ms=5)


def _fetch_request() -> Any:
    partition = FetchRequest.FetchTopic.FetchPartition(
        partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
    return FetchRequest(max_wait_ms=1, min_bytes=1, max_bytes=1 << 20, isolation_level=1,
                        topics=[FetchRequest.FetchTopic(topic="t", partitions=[partition])],
                        forgotten_topics_data=[], version=12)


def _fetch_response(correlation_id: int, records: bytes) -> bytes:
    topic = FetchResponse.FetchableTopicResponse
    part = topic.PartitionData(partition_index=0, error_code=0, high_watermark=300,
                               last_stable_offset=300, log_start_offset=0,
                               aborted_transactions=[], preferred_read_replica=-1,
                               records=records)
    response = FetchResponse(throttle_time_ms=0, error_code=0, session_id=0,
                             responses=[topic(topic="t", partitions=[part])], version=12)
    response.with_header(correlation_id=correlation_id)
    return bytes(response.encode(framed=True, header=True))


def _exchange(parser: Any, chunk: int, responses: int = 2) -> list[tuple[int, Any]]:
    """``responses`` Fetch round trips whose response bytes arrive ``chunk`` at a time
    (all responses back to back, so a chunk may end one frame and start the next)."""
    wire = b""
    for _ in range(responses):
        wire += _fetch_response(parser.send_request(_fetch_request()), BLOB)
    parser.send_bytes()
    out: list[tuple[int, Any]] = []
    for start in range(0, len(wire), chunk):
        out += parser.receive_bytes(wire[start:start + chunk])
    return out


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 97, 1 << 20])
def test_responses_split_anywhere_decode_as_kafka_pythons_parser_does(chunk: int) -> None:
    ours = _exchange(_FrameParser(client_id="c"), chunk)
    theirs = _exchange(KafkaProtocol(client_id="c"), 4096)
    assert [cid for cid, _ in ours] == [1, 2]
    assert [r for _, r in ours] == [r for _, r in theirs]
    records = ours[1][1].responses[0].partitions[0].records
    assert bytes(records) == BLOB
    assert decode_batches(records, 0, 300).values.to_pylist()[298:] == [b"v298", b"v299"]


def test_a_frame_received_into_its_room_decodes_as_one_received_as_bytes() -> None:
    big = encode_batch(pa.array([b"x" * 1000] * 300), timestamp_ms=5)  # over 64 KiB
    parser = _FrameParser(client_id="c")
    wire = _fetch_response(parser.send_request(_fetch_request()), big)
    parser.send_bytes()
    assert parser.room() is None  # no frame started yet
    assert parser.receive_bytes(wire[:100]) == []
    room = parser.room()
    assert room is not None and len(room) == len(wire) - 100
    direct = len(wire) - 1_100
    room[:direct] = wire[100:100 + direct]
    parser.received(direct)
    assert parser.receive_bytes(b"") == []  # not complete yet
    assert parser.room() is None  # under 64 KiB left: received as bytes
    [(cid, response)] = parser.receive_bytes(wire[100 + direct:])
    assert cid == 1
    assert response.responses[0].partitions[0].records == big


def test_a_frame_completed_in_its_room_is_handed_on_by_receiving_nothing() -> None:
    big = encode_batch(pa.array([b"y" * 1000] * 300), timestamp_ms=5)
    parser = _FrameParser(client_id="c")
    wire = _fetch_response(parser.send_request(_fetch_request()), big)
    parser.send_bytes()
    parser.receive_bytes(wire[:10])
    room = parser.room()
    assert room is not None
    room[:] = wire[10:]
    parser.received(len(wire) - 10)
    [(_, response)] = parser.receive_bytes(b"")
    assert response.responses[0].partitions[0].records == big
    assert parser.receive_bytes(b"") == []


def test_a_frame_reads_its_rest_as_a_view_and_parts_as_bytes() -> None:
    frame = _Frame(6)
    frame.write(b"abcdef")
    frame.seek(0)
    assert frame.read(2) == b"ab"
    assert isinstance(frame.read(2), bytes)
    rest = frame.read()
    assert isinstance(rest, memoryview)
    assert bytes(rest) == b"ef"
    assert frame.tell() == 6


def _produce_request(version: int, batches: list[Any]) -> Any:
    parts = [ProduceRequest.TopicProduceData.PartitionProduceData(index=i, records=b)
             for i, b in enumerate(batches)]
    return ProduceRequest(transactional_id="tx", acks=-1, timeout_ms=1000, version=version,
                          topic_data=[ProduceRequest.TopicProduceData(name="t",
                                                                      partition_data=parts)])


@pytest.mark.parametrize("version", [3, 8, 9])  # Int32 and compact (v9) records lengths
def test_a_produce_requests_large_batches_are_sent_as_they_are_not_copied(
        version: int) -> None:
    big = encode_batch_view(pa.array([b"x" * 100] * 2_000), timestamp_ms=5)  # over 64 KiB
    other = encode_batch_view(pa.array([b"y" * 100] * 1_000), timestamp_ms=6)
    small = encode_batch(pa.array([b"z"] * 3), timestamp_ms=7)
    ours, theirs = _FrameParser(client_id="c"), KafkaProtocol(client_id="c")
    assert ours.send_request(_produce_request(version, [big, small, other])) == \
        theirs.send_request(_produce_request(version, [big, small, other]))
    pieces = ours.send_bytes()
    assert isinstance(pieces, list)
    assert any(p is big for p in pieces) and any(p is other for p in pieces)
    assert b"".join(bytes(p) for p in pieces) == bytes(theirs.send_bytes())
    assert ours.send_bytes() == b""


def test_requests_without_large_batches_are_kafka_pythons_bytes() -> None:
    ours, theirs = _FrameParser(client_id="c"), KafkaProtocol(client_id="c")
    small = encode_batch(pa.array([b"z"] * 3), timestamp_ms=7)
    for parser in (ours, theirs):
        parser.send_request(_produce_request(9, [small]))
        parser.send_request(_fetch_request())
    assert ours.send_bytes() == theirs.send_bytes()


def test_pieces_are_queued_behind_earlier_bytes_in_order() -> None:
    big = encode_batch_view(pa.array([b"x" * 100] * 2_000), timestamp_ms=5)
    ours, theirs = _FrameParser(client_id="c"), KafkaProtocol(client_id="c")
    for parser in (ours, theirs):
        parser.send_request(_fetch_request())
        parser.send_request(_produce_request(9, [big]))
    pieces = ours.send_bytes()
    assert b"".join(bytes(p) for p in pieces) == bytes(theirs.send_bytes())


def test_the_transport_queues_pieces_as_separate_writes() -> None:
    written: list[Any] = []

    class Recorder(_FrameTransport):  # type: ignore[misc]
        def __init__(self) -> None:  # no socket: only the queueing is under test
            pass

        def writelines(self, data: Any) -> None:
            written.append(("lines", list(data)))

    view = memoryview(b"abc")
    Recorder().write([b"head", view])
    assert written == [("lines", [b"head", view])]
