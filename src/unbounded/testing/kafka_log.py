"""Read a Kafka topic's log raw and keep what transactions committed, for exactly-once
checks that must not trust a consumer.

tansu 0.6.0 hands aborted records to ``read_committed`` consumers, so :func:`read_log`
asks the leader for the raw record batches (Fetch v4, ``read_uncommitted``) and applies
the rule of the Kafka protocol itself: a transactional record is committed iff the next
control batch of its producer id is a COMMIT marker; an ABORT marker discards it; with no
marker yet it is open. Non-transactional records count as committed.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient

__all__ = ["LogContents", "read_log"]


@dataclass
class LogContents:
    """A partition log read raw: values of committed records, and the rest."""

    committed: list[bytes] = field(default_factory=list)
    aborted: list[bytes] = field(default_factory=list)
    open: list[bytes] = field(default_factory=list)


def read_log(bootstrap: str, topic: str, partitions: int) -> LogContents:
    """Every record of ``topic`` sorted by the transaction markers that follow it.

    A consumer cannot be trusted to tell committed from aborted records here (tansu
    0.6.0 sends aborted records to ``read_committed`` consumers with an empty
    aborted-transactions list), so this asks the leader for the raw record batches
    (Fetch v4, ``read_uncommitted``) and applies the rule of the Kafka protocol itself:
    a transactional record is committed iff the next control batch of its producer id
    is a COMMIT marker; an ABORT marker discards it; with no marker yet it is open (not
    visible to ``read_committed`` readers). Non-transactional records count as committed.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topic, timeout=10)
    out = LogContents()
    for p in range(partitions):
        leader = meta.brokers[meta.topics[topic].partitions[p].leader]
        _classify(_fetch_all(str(leader.host), int(leader.port), topic, p), out)
    return out


Batch = tuple[int, int, int, list[bytes], int | None]  # attrs, pid, base, values, marker


def _classify(batches: list[Batch], out: LogContents) -> None:
    pending: dict[int, list[bytes]] = {}
    for attrs, pid, _, values, marker in batches:
        if attrs & 0x20:  # control batch: 1 = COMMIT, 0 = ABORT
            target = out.committed if marker == 1 else out.aborted
            target.extend(pending.pop(pid, []))
        elif attrs & 0x10:  # transactional data
            pending.setdefault(pid, []).extend(values)
        else:
            out.committed.extend(values)
    for values in pending.values():
        out.open.extend(values)


def _fetch_all(host: str, port: int, topic: str, partition: int) -> list[Batch]:
    batches: list[Batch] = []
    offset = 0
    with socket.create_connection((host, port), timeout=10) as conn:
        for _ in range(10_000):
            records, high = _fetch(conn, topic, partition, offset)
            parsed = _parse_batches(records)
            for batch, next_offset in parsed:
                batches.append(batch)
                offset = max(offset, next_offset)
            if offset >= high:
                return batches
            assert parsed, f"no progress fetching {topic}-{partition} at {offset} < {high}"
    raise AssertionError("log too long")


def _fetch(conn: socket.socket, topic: str, partition: int, offset: int) -> tuple[bytes, int]:
    name = topic.encode()
    body = struct.pack(">hhih", 1, 4, 7, 4) + b"test"  # Fetch v4, correlation 7
    body += struct.pack(">iiiib", -1, 100, 1, 8 << 20, 0)  # read_uncommitted
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, partition, offset, 8 << 20)
    conn.sendall(struct.pack(">i", len(body)) + body)
    data = _recv(conn, struct.unpack(">i", _recv(conn, 4))[0])
    pos = 4 + 4 + 4  # correlation id, throttle time, topic count
    pos += 2 + struct.unpack_from(">h", data, pos)[0] + 4  # topic name, partition count
    _, error, high, _ = struct.unpack_from(">ihqq", data, pos)
    if not (error == 0):
        raise AssertionError(f"Fetch of {topic}-{partition} failed with error code {error}")
    pos += 4 + 2 + 8 + 8
    aborted = struct.unpack_from(">i", data, pos)[0]
    pos += 4 + max(aborted, 0) * 16
    size = struct.unpack_from(">i", data, pos)[0]
    return data[pos + 4:pos + 4 + max(size, 0)], high


def _recv(conn: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(n - len(chunks))
        assert chunk, "broker closed the connection"
        chunks += chunk
    return bytes(chunks)


def _parse_batches(data: bytes) -> list[tuple[Batch, int]]:
    """Record batches (magic 2, uncompressed) in ``data``; a trailing partial one is cut."""
    out: list[tuple[Batch, int]] = []
    pos = 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if pos + 12 + length > len(data):
            break
        _, magic, _, attrs, last_delta = struct.unpack_from(">ibIhi", data, pos + 12)
        assert magic == 2 and attrs & 0x07 == 0, "expected uncompressed v2 record batches"
        pid, _, _, count = struct.unpack_from(">qhii", data, pos + 12 + 4 + 1 + 4 + 2 + 4 + 16)
        records = _parse_records(data, pos + 61, count)
        marker = None
        if attrs & 0x20:
            marker = struct.unpack(">hh", records[0][0])[1]
        values = [v for _, v in records]
        out.append(((attrs, pid, base, values, marker), base + last_delta + 1))
        pos += 12 + length
    return out


def _parse_records(data: bytes, pos: int, count: int) -> list[tuple[bytes, bytes]]:
    records: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        _, pos = _varint(data, pos)  # record length
        pos += 1  # attributes
        _, pos = _varint(data, pos)  # timestamp delta
        _, pos = _varint(data, pos)  # offset delta
        key_len, pos = _varint(data, pos)
        key = data[pos:pos + max(key_len, 0)]
        pos += max(key_len, 0)
        value_len, pos = _varint(data, pos)
        value = data[pos:pos + max(value_len, 0)]
        pos += max(value_len, 0)
        headers, pos = _varint(data, pos)
        for _ in range(headers):
            n, pos = _varint(data, pos)
            pos += n
            n, pos = _varint(data, pos)
            pos += max(n, 0)
        records.append((key, value))
    return records


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7

