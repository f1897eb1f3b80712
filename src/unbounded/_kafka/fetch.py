"""Reads an offset range of one partition with Kafka Fetch requests, into Spark's rows.

librdkafka hands Python one ``Message`` per record, which caps its reader near 0.45M
records/s. Here a Fetch response's record batches stay one ``bytes`` blob that
:func:`unbounded._kafka.records.decode_batches` turns into columns. kafka-python's
connection manager (``kafka.net``) owns the sockets, the ApiVersions negotiation and the
cluster metadata; its protocol classes encode the requests and decode the responses,
whose ``records`` field it leaves as raw bytes.

The next Fetch goes out before a response is decoded (its offset comes from the batch
headers alone), so the broker and the network work while the decoder does. Clients are
kept between batches, in a pool keyed by the client config.

Plaintext brokers only: with SASL or TLS settings the source keeps its librdkafka
reader (see :func:`unbounded._kafka.common.wire_supported`).
"""

from __future__ import annotations

import atexit
import logging
import struct
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from unbounded._kafka.common import (
    POLL_TIMEOUT_OPTION,
    unavailable_error,
)
from unbounded._kafka.network import Connections
from unbounded._kafka.records import decode_batches

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.errors as kafka_errors
    from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest
    from kafka.structs import TopicPartition

__all__ = [
    "FetchRange",
    "FetchSettings",
    "RecordColumns",
    "close_clients",
    "read_range",
    "spark_rows",
]

_log = logging.getLogger(__name__)

_TIMESTAMP_ARROW = pa.timestamp("us", tz="UTC")
_INT32_MAX = 2**31 - 1
_FETCH_VERSIONS = {"min_version": 4, "max_version": 12}  # v13+ name topics by id only
_LIST_OFFSETS_VERSIONS = {"min_version": 1, "max_version": 7}
_EARLIEST, _LATEST = -2, -1
_OFFSET_OUT_OF_RANGE = 1
_POLL_SLICE_S = 0.5
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 1.0
_MAX_IDLE_CLIENTS = 8  # per config: about the executor's thread count
_BATCH_HEAD = struct.Struct(">qi")  # base offset, batch length
_LAST_DELTA = struct.Struct(">i")  # last offset delta, 23 bytes into a v2 batch


# ---------------------------------------------------------------- Spark's rows


class RecordColumns(Protocol):
    """One partition's records as columns (``DecodedRecords`` is one)."""

    @property
    def offsets(self) -> npt.NDArray[np.int64]: ...
    @property
    def timestamps_ms(self) -> npt.NDArray[np.int64]: ...
    @property
    def timestamp_types(self) -> npt.NDArray[np.int32]: ...
    @property
    def keys(self) -> pa.Array: ...
    @property
    def values(self) -> pa.Array: ...
    @property
    def headers(self) -> pa.Array | None: ...


def spark_rows(records: RecordColumns, topic: str, partition: int,
               schema: pa.Schema) -> pa.Table:
    """Spark's Kafka rows in ``schema`` (``kafka_read_schema(...)`` or
    ``kafka_schema(...).to_arrow_schema()``: keys and values as binary_view or
    large_binary); both readers build their tables here, so they give identical tables
    for one range."""
    n = len(records.offsets)
    columns: dict[str, pa.Array] = {
        "key": _as_type(records.keys, schema.field("key").type),
        "value": _as_type(records.values, schema.field("value").type),
        "topic": _constant_string_column(topic, n, schema.field("topic").type),
        "partition": _numeric_column(np.full(n, partition, np.int32), pa.int32()),
        "offset": _numeric_column(records.offsets.astype(np.int64, copy=False), pa.int64()),
        "timestamp": _numeric_column(records.timestamps_ms * 1000, _TIMESTAMP_ARROW),
        "timestampType": _numeric_column(records.timestamp_types.astype(np.int32, copy=False),
                                         pa.int32()),
    }
    if "headers" in schema.names:
        columns["headers"] = _headers_column(records.headers, n, schema.field("headers").type)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _as_type(array: pa.Array, kind: pa.DataType) -> pa.Array:
    return array if array.type == kind else array.cast(kind)


def _numeric_column(values: npt.NDArray[Any], type: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array without a copy (``pa.array`` over NumPy, like
    ``pa.scalar``, imports pandas on first use: 0.2 s of the first batch)."""
    data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(type, len(data), [None, pa.py_buffer(data)])


def _constant_string_column(text: str, n: int, kind: pa.DataType) -> pa.Array:
    data = text.encode("utf-8")
    if kind == pa.string_view():  # n equal views of one copy of the text
        return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(_equal_views(data, n)),
                                               pa.py_buffer(data)])
    ends = np.arange(n + 1, dtype=np.int64) * len(data)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(ends), pa.py_buffer(data * n))


def _equal_views(data: bytes, n: int) -> npt.NDArray[np.uint64]:
    """Arrow's 16-byte view of ``data`` (inline up to 12 bytes, else its first 4 bytes,
    buffer 0 and offset 0), ``n`` times."""
    head = int.from_bytes(data[:4].ljust(4, b"\0"), "little")
    rest = int.from_bytes(data[4:12].ljust(8, b"\0"), "little") if len(data) <= 12 else 0
    views = np.empty((n, 2), np.uint64)
    views[:, 0], views[:, 1] = len(data) | (head << 32), rest
    return views


def _headers_column(headers: pa.Array | None, n: int, type: pa.DataType) -> pa.Array:
    """Spark's headers: null, not an empty list, for a record without headers."""
    if headers is None:
        return pa.nulls(n, type)
    empty = np.asarray(headers.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)) == 0
    if not empty.any():
        return headers
    mask = pa.array(empty | np.asarray(headers.is_null().to_numpy(zero_copy_only=False)))
    return pa.LargeListArray.from_arrays(headers.offsets, headers.values, type=type, mask=mask)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class FetchSettings:
    """The Fetch parameters, from the librdkafka settings the source passes its readers.

    >>> FetchSettings.from_config({"bootstrap.servers": "b:9092"}).isolation_level
    1
    """

    bootstrap: str
    client_id: str
    isolation_level: int  # 0 read_uncommitted, 1 read_committed (librdkafka's default)
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    partition_max_bytes: int
    check_crcs: bool = False  # librdkafka's check.crcs, off by default as there

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> FetchSettings:
        isolation = str(config.get("isolation.level", "read_committed")).lower()
        return cls(
            bootstrap=str(config["bootstrap.servers"]),
            client_id=str(config.get("client.id", "unbounded")),
            isolation_level=0 if isolation == "read_uncommitted" else 1,
            max_wait_ms=_int(config, "fetch.wait.max.ms", 500),
            min_bytes=_int(config, "fetch.min.bytes", 1),
            max_bytes=_int(config, "fetch.max.bytes", 50 << 20),
            partition_max_bytes=_int(config, "max.partition.fetch.bytes", 16 << 20),
            check_crcs=str(config.get("check.crcs", "false")).lower() == "true",
        )

    def manager_config(self) -> dict[str, Any]:
        """kafka-python's connection manager settings: responses up to the fetch size
        (a first batch may exceed it), and no topic auto-creation by a metadata request."""
        biggest = max(self.max_bytes, self.partition_max_bytes)
        return {"bootstrap_servers": self.bootstrap, "client_id": self.client_id,
                "receive_message_max_bytes": min(biggest + (16 << 20), _INT32_MAX),
                "request_timeout_ms": self.max_wait_ms + 30_000,
                "reconnect_backoff_max_ms": 1000}


def _int(config: Mapping[str, str], key: str, default: int) -> int:
    return min(int(config.get(key, default)), _INT32_MAX)


@dataclass(frozen=True)
class FetchRange:
    """Offsets ``[from_offset, until_offset)`` of one partition, and how to read them.

    ``schema`` is the tables' (``kafka_read_schema``); keys and values typed
    ``binary_view`` are views into each Fetch response's records, not copies.
    """

    topic: str
    partition: int
    from_offset: int
    until_offset: int
    config: Mapping[str, str] = field(repr=False)
    schema: pa.Schema
    include_headers: bool = False
    poll_timeout_ms: int = 120_000

    @property
    def where(self) -> str:
        return f"{self.topic}-{self.partition}"


# ---------------------------------------------------------------- clients


class _Client:
    """A kafka-python connection manager and its event loop, used by one reader at a
    time. Nothing runs between calls: the network moves only inside :meth:`wait`."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._conn = Connections(**settings.manager_config())
        self._manager = self._conn.manager
        self._manager.cluster.config["allow_auto_create_topics"] = False

    def wait(self, future: Any, deadline: float) -> bool:
        """Drive the network until ``future`` is done (True) or ``deadline`` passes."""
        while not future.is_done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._conn.poll(min(remaining, _POLL_SLICE_S), future)
        return True

    def idle(self, seconds: float) -> None:
        """Let ``seconds`` pass while the network moves (reconnects, metadata)."""
        self._conn.idle(seconds)

    def leader(self, tp: Any) -> int | None:
        """The partition's leader as the cached metadata says; None when unknown."""
        if not self._manager.bootstrapped:
            return None
        node = self._manager.cluster.leader_for_partition(tp)
        return None if node is None or node < 0 else int(node)

    def refresh(self, topic: str) -> Any:
        """A future done when metadata with ``topic`` arrived (bootstrapping if needed)."""
        self._manager.cluster.add_topic(topic)
        return self._manager.cluster.request_update()

    def send(self, request: Any, node: int) -> Any:
        return self._conn.send(request, node)

    def address(self, node: int) -> str:
        broker = self._manager.cluster.broker_metadata(node)
        return "?" if broker is None else f"{broker.host}:{broker.port}"

    def close(self) -> None:
        self._conn.close()


_PoolKey = tuple[tuple[str, str], ...]


class _ClientPool:
    """Idle clients kept between batches, a few per client config: the next batch skips
    the connection set-up and the metadata round trip."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[_PoolKey, list[_Client]] = {}

    def take(self, key: _PoolKey) -> _Client | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def give(self, key: _PoolKey, client: _Client) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            kept = len(idle) < _MAX_IDLE_CLIENTS
            if kept:
                idle.append(client)
        if not kept:
            client.close()

    def close(self, config: Mapping[str, str] | None = None) -> None:
        """Close the idle clients of ``config`` (all of them when None)."""
        wanted = None if config is None else _pool_key(config)
        with self._lock:
            keys = [k for k in self._idle if wanted is None or k == wanted]
            dropped = [c for k in keys for c in self._idle.pop(k)]
        for client in dropped:
            client.close()


def _pool_key(config: Mapping[str, str]) -> _PoolKey:
    return tuple(sorted((str(k), str(v)) for k, v in config.items()))


_POOL = _ClientPool()
atexit.register(_POOL.close)


def close_clients(config: Mapping[str, str] | None = None) -> None:
    """Close the kept connections of ``config`` (all when None); a stopping source calls it."""
    _POOL.close(config)


# ---------------------------------------------------------------- reading


def read_range(spec: FetchRange, on_data_loss: Callable[[str], None]) -> pa.Table:
    """The records of ``spec`` as Spark's Kafka rows.

    Vanished offsets go to ``on_data_loss`` (which raises, or logs and lets the read skip
    them); brokers that do not answer for ``spec.poll_timeout_ms`` raise
    :class:`~unbounded.errors.KafkaUnavailableError`.
    """
    key = _pool_key(spec.config)
    client = _POOL.take(key) or _Client(FetchSettings.from_config(spec.config))
    try:
        chunks = _RangeReader(spec, client, on_data_loss).read()
    except BaseException:
        client.close()
        raise
    _POOL.give(key, client)
    if not chunks:
        return spec.schema.empty_table()
    return chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)


@dataclass(frozen=True)
class _Pending:
    """A Fetch in flight: the offset it asked for, the broker, the response's future."""

    offset: int
    node: int
    future: Any


class _RangeReader:
    """Fetches one range: one request in flight while the previous response decodes.

    A broker error or silence is retried until ``poll_timeout_ms`` passes without
    progress; leader changes and unknown partitions refresh the metadata first.
    """

    def __init__(self, spec: FetchRange, client: _Client,
                 on_data_loss: Callable[[str], None]) -> None:
        self.spec = spec
        self.client = client
        self.data_loss = on_data_loss
        self.tp = TopicPartition(spec.topic, spec.partition)
        self.next_offset = spec.from_offset
        self.done = False
        self.chunks: list[pa.Table] = []
        # keys and values as views into the response's records (a bytes of their own)
        self.views = spec.schema.field("value").type == pa.binary_view()
        self.deadline = 0.0
        self.backoff = _FIRST_BACKOFF_S
        self._progress()

    def read(self) -> list[pa.Table]:
        pending: _Pending | None = None
        while not self.done and self.next_offset < self.spec.until_offset:
            if pending is None:
                pending = self._send(self.next_offset)
                if pending is None:
                    continue
            data = self._receive(pending)
            pending = None if data is None else self._take(data)
        return self.chunks

    # -- requests

    def _send(self, offset: int) -> _Pending | None:
        node = self._leader()
        if node is None:
            return None
        return _Pending(offset, node, self.client.send(self._fetch_request(offset), node))

    def _fetch_request(self, offset: int) -> Any:
        s = self.client.settings
        partition = FetchRequest.FetchTopic.FetchPartition(
            partition=self.spec.partition, fetch_offset=offset,
            partition_max_bytes=s.partition_max_bytes)
        topic = FetchRequest.FetchTopic(topic=self.spec.topic, partitions=[partition])
        return FetchRequest(max_wait_ms=s.max_wait_ms, min_bytes=s.min_bytes,
                            max_bytes=s.max_bytes, isolation_level=s.isolation_level,
                            topics=[topic], forgotten_topics_data=[], **_FETCH_VERSIONS)

    def _leader(self) -> int | None:
        """The partition's leader, after a metadata refresh when it is unknown; None
        (after a pause) while the brokers do not name one."""
        node = self.client.leader(self.tp)
        if node is not None:
            return node
        if self._await(self.client.refresh(self.spec.topic), "metadata request") is None:
            return None
        node = self.client.leader(self.tp)
        if node is None:
            self._pause(f"the brokers name no leader for {self.spec.where}")
        return node

    def _await(self, future: Any, what: str) -> Any | None:
        """``future``'s value; None (after a metadata refresh and a pause) when it failed."""
        if not self.client.wait(future, self.deadline):
            raise self._unavailable(f"{what} not answered")
        if future.failed():
            self.client.refresh(self.spec.topic)
            self._pause(f"{what} failed: {future.exception}")
            return None
        return future.value

    def _receive(self, pending: _Pending) -> Any | None:
        """The partition's part of the response, or None when it must be fetched again."""
        where = f"broker {self.client.address(pending.node)}"
        response = self._await(pending.future, f"fetch from {where}")
        if response is None:
            return None
        data = _partition_data(response, self.spec.topic, self.spec.partition)
        code = getattr(response, "error_code", 0) or (0 if data is None else data.error_code)
        if data is None or code:
            self._on_error(code, where)
            return None
        return data

    def _on_error(self, code: int, where: str) -> None:
        if code == _OFFSET_OUT_OF_RANGE:
            self._out_of_range()
            return
        error = kafka_errors.for_code(code)
        name = getattr(error, "message", error.__name__)
        if code and not (error.retriable or error.invalid_metadata):
            raise RuntimeError(f"Reading Kafka partition {self.spec.where} from {where} failed: "
                               f"{name} (error code {code}).")
        self.client.refresh(self.spec.topic)  # NOT_LEADER, UNKNOWN_TOPIC_OR_PARTITION, ...
        self._pause(f"{where} answered {name if code else 'without the partition'}")

    # -- responses

    def _take(self, data: Any) -> _Pending | None:
        """Decode one response (the next fetch already sent) and return that fetch."""
        blob = data.records or b""
        until = self.spec.until_offset
        end = _batches_end(blob, self.next_offset)
        prefetch = self._send(end) if self.next_offset < end < until else None
        decoded = decode_batches(blob, self.next_offset, until,
                                 include_headers=self.spec.include_headers,
                                 aborted=_aborted(data),
                                 verify_crc=self.client.settings.check_crcs,
                                 views=self.views)
        if decoded.next_offset <= self.next_offset:
            self._no_records(data)
            return None
        if len(decoded.offsets):
            self.chunks.append(spark_rows(decoded, self.spec.topic, self.spec.partition,
                                          self.spec.schema))
        self.next_offset = decoded.next_offset
        self._progress()
        return prefetch if prefetch is not None and prefetch.offset == self.next_offset else None

    def _no_records(self, data: Any) -> None:
        """Nothing at our offset: the log ends before it (data loss), starts after it
        (data loss), or the records have not arrived yet (wait)."""
        high, start = int(data.high_watermark), int(getattr(data, "log_start_offset", -1))
        stable = int(data.last_stable_offset)
        if 0 <= high <= self.next_offset:
            self._ends_at(high)
        elif start > self.next_offset:
            self._skip_to(start)
        elif self.client.settings.isolation_level and 0 <= stable <= self.next_offset:
            self._pause(f"offset {self.next_offset} is past the last stable offset {stable}: "
                        "a transaction is still open")
        else:
            self._pause("no records arrived")

    def _out_of_range(self) -> None:
        bounds = self._log_bounds()
        if bounds is None:
            return
        low, high = bounds
        if self.next_offset >= high:
            self._ends_at(high)
        elif self.next_offset < low:
            self._skip_to(low)
        else:
            self._pause(f"offset {self.next_offset} out of range of {low} to {high}")

    def _ends_at(self, high: int) -> None:
        self.data_loss(f"Partition {self.spec.where} ends at offset {high}, but the batch "
                       f"needs offsets {self.next_offset} to {self.spec.until_offset}.")
        self.done = True

    def _skip_to(self, low: int) -> None:
        self.data_loss(f"Offsets {self.next_offset} to {low} of partition {self.spec.where} "
                       f"are gone (the log now starts at {low}).")
        self.next_offset = low
        self._progress()

    def _log_bounds(self) -> tuple[int, int] | None:
        """The partition's earliest and latest offsets (ListOffsets to the leader)."""
        node = self._leader()
        if node is None:
            return None
        futures = [self.client.send(self._list_request(spec), node)
                   for spec in (_EARLIEST, _LATEST)]
        answers = [self._await(f, "offset request") for f in futures]
        offsets = [_listed_offset(a, self.spec.topic, self.spec.partition) for a in answers]
        if None in answers:
            return None
        if offsets[0] is None or offsets[1] is None:
            self.client.refresh(self.spec.topic)
            self._pause("offset request failed")
            return None
        return offsets[0], offsets[1]

    def _list_request(self, spec: int) -> Any:
        partition = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=self.spec.partition, timestamp=spec)
        topic = ListOffsetsRequest.ListOffsetsTopic(name=self.spec.topic, partitions=[partition])
        return ListOffsetsRequest(replica_id=-1, topics=[topic], **_LIST_OFFSETS_VERSIONS)

    # -- waiting

    def _progress(self) -> None:
        self.deadline = time.monotonic() + self.spec.poll_timeout_ms / 1000
        self.backoff = _FIRST_BACKOFF_S

    def _pause(self, detail: str) -> None:
        """Back off before a retry; past the poll timeout, fail naming the brokers."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._unavailable(detail)
        _log.debug("Kafka fetch of %s at %d: %s; retrying in %.2fs", self.spec.where,
                   self.next_offset, detail, self.backoff)
        self.client.idle(min(self.backoff, remaining))
        self.backoff = min(self.backoff * 2, _MAX_BACKOFF_S)

    def _unavailable(self, detail: str) -> Exception:
        return unavailable_error(
            f"fetch of offset {self.next_offset} of {self.spec.where}",
            self.client.settings.bootstrap, self.spec.poll_timeout_ms, POLL_TIMEOUT_OPTION,
            detail)


def _partition_data(response: Any, topic: str, partition: int) -> Any | None:
    for topic_data in response.responses:
        if topic_data.topic == topic:
            for data in topic_data.partitions:
                if data.partition_index == partition:
                    return data
    return None


def _listed_offset(response: Any | None, topic: str, partition: int) -> int | None:
    if response is None:
        return None
    for topic_data in response.topics:
        for data in topic_data.partitions:
            if topic_data.name == topic and data.partition_index == partition:
                return None if data.error_code else int(data.offset)
    return None


def _aborted(data: Any) -> list[tuple[int, int]]:
    return [(int(a.producer_id), int(a.first_offset)) for a in data.aborted_transactions or ()]


def _batches_end(blob: bytes | memoryview, from_offset: int) -> int:
    """The offset after the last complete record batch in ``blob`` (``from_offset`` when
    none is complete): where the next Fetch starts, known before the blob is decoded."""
    end, pos, size = from_offset, 0, len(blob)
    while pos + 27 <= size:
        base, length = _BATCH_HEAD.unpack_from(blob, pos)
        if pos + 12 + length > size:
            break
        end = max(end, base + _LAST_DELTA.unpack_from(blob, pos + 23)[0] + 1)
        pos += 12 + length
    return end
