"""A transactional Kafka producer that writes whole Arrow tables over the wire protocol.

librdkafka takes one ``produce()`` call per record (about 1 us of Python and C work
each). Here a table is partitioned with NumPy, cut into record batches of about
``batch_bytes`` that :func:`unbounded._kafka.records.encode_batch` encodes in one call
each, and sent in Produce requests framed by kafka-python's protocol classes over its
connection layer (``kafka.net``), driven from the caller's thread: a request is on the
wire while the next batch is encoded.

The transaction protocol (KIP-98), as the Java client speaks it:

1. :meth:`TransactionalProducer.init_transactions`: FindCoordinator(transactional.id)
   then InitProducerId, which bumps the producer epoch (fencing any older producer with
   the same id) and completes the transaction that producer left open. Sequence
   numbers restart at 0.
2. Per transaction: AddPartitionsToTxn for the partitions about to be written; Produce
   with ``acks=all`` and transactional batches carrying the producer id, epoch and a
   per-partition sequence number that continues across transactions, at most
   ``max_in_flight`` requests per broker, in sequence order; AddOffsetsToTxn and
   TxnOffsetCommit (to the group's coordinator) for consumer-group offsets; EndTxn.

Errors: retriable ones (leader moved, coordinator moving or loading, concurrent
transactions, a broker that does not answer) are retried with backoff for
``timeout_ms`` without progress, then :class:`~unbounded.errors.KafkaUnavailableError`
names the brokers and the option. A fenced producer raises
:class:`~unbounded.errors.ConcurrentQueryError`; any other failure raises
:class:`~unbounded.errors.UnboundedError` (``KAFKA_TRANSACTION_FAILED``). After a failed
transaction the producer must be initialised again (which aborts what it left open).

Keyed rows go where Java's default partitioner puts them:

    >>> import pyarrow as pa
    >>> key_partitions(pa.array(["a", "b", "hello"]), 3).tolist()
    [1, 2, 0]
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from unbounded._kafka.common import unavailable_error
from unbounded._kafka.network import Connections
from unbounded._kafka.records import encode_batch_view
from unbounded.errors import (
    AnalysisException,
    ConcurrentQueryError,
    KafkaUnavailableError,
    UnboundedError,
)

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.errors as kafka_errors
    from kafka.future import Future
    from kafka.protocol.metadata import FindCoordinatorRequest
    from kafka.protocol.producer import (
        AddOffsetsToTxnRequest,
        AddPartitionsToTxnRequest,
        EndTxnRequest,
        InitProducerIdRequest,
        ProduceRequest,
        TxnOffsetCommitRequest,
    )
    from kafka.structs import TopicPartition

__all__ = [
    "ProducerSettings",
    "TransactionalProducer",
    "assign_partitions",
    "key_partitions",
    "murmur2",
    "row_bytes",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
Partition = tuple[str, int]

_GROUP, _TRANSACTION = 0, 1  # FindCoordinator key types
_SEQUENCE_MODULUS = 1 << 31  # sequence numbers wrap to 0 after Int32.MAX_VALUE
_RECORD_OVERHEAD = 24  # bytes a record adds beyond key, value and headers (upper bound)
_BACKOFF_S, _MAX_BACKOFF_S = 0.02, 1.0
_FENCED = {kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError,
           kafka_errors.TransactionalIdAuthorizationFailedError}
_COORDINATOR_MOVED = {kafka_errors.NotCoordinatorError, kafka_errors.CoordinatorNotAvailableError}
_OK_CODES = {0, kafka_errors.DuplicateSequenceNumberError.errno}  # a duplicate is stored
_OUT_OF_ORDER = kafka_errors.OutOfOrderSequenceNumberError.errno


@dataclass(frozen=True)
class ProducerSettings:
    """How a :class:`TransactionalProducer` connects, batches and waits.

    ``timeout_ms`` bounds each wait for brokers that do not answer (a step waits that
    long without progress, then fails naming ``timeout_option``). ``batch_bytes`` is
    the target size of one record batch; ``request_bytes`` caps one Produce request,
    which holds at most one batch per partition.
    """

    bootstrap: str
    transactional_id: str
    timeout_ms: int = 120_000
    timeout_option: str = "kafkaProducer.timeoutMs"
    transaction_timeout_ms: int = 60_000
    request_timeout_ms: int = 30_000
    batch_bytes: int = 1_000_000
    request_bytes: int = 16 << 20
    max_in_flight: int = 5
    compression: str | None = None
    client_id: str = "unbounded"


# ---------------------------------------------------------------- errors


class _Retry(Exception):
    """A retriable failure; ``refresh`` asks for new metadata before the retry."""

    def __init__(self, detail: str, *, refresh: bool = False) -> None:
        super().__init__(detail)
        self.refresh = refresh


def _fenced(transactional_id: str, detail: str) -> ConcurrentQueryError:
    return ConcurrentQueryError(
        f"The Kafka producer {transactional_id!r} was fenced ({detail}): another producer "
        "with the same transactional.id took over.", error_class="KAFKA_PRODUCER_FENCED")


def _failed(detail: str) -> UnboundedError:
    return UnboundedError(f"Kafka transaction failed: {detail}",
                          error_class="KAFKA_TRANSACTION_FAILED")


def _check_codes(codes: Iterable[int], what: str, transactional_id: str) -> None:
    """Raise for the worst of ``codes``: fenced, then fatal, then retriable."""
    errors = [kafka_errors.for_code(code) for code in codes if code]
    if not errors:
        return
    names = ", ".join(sorted({e.__name__ for e in errors}))
    if any(e in _FENCED for e in errors):
        raise _fenced(transactional_id, f"{what}: {names}")
    fatal = [e for e in errors if not e.retriable
             and e is not kafka_errors.OperationNotAttemptedError]
    if fatal:
        raise _failed(f"{what} was refused: {names}")
    raise _Retry(f"{what}: {names}", refresh=any(e in _COORDINATOR_MOVED for e in errors))


def _check_exception(exc: BaseException, what: str) -> None:
    """A failed request future: connection-level trouble is retriable, the rest fatal."""
    if getattr(exc, "retriable", False) or isinstance(exc, kafka_errors.UnknownBrokerIdError):
        raise _Retry(f"{what}: {exc!r}", refresh=True) from None
    raise _failed(f"{what}: {exc!r}") from None


# ---------------------------------------------------------------- partitioning


def _binary_layout(keys: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                             npt.NDArray[np.uint8]]:
    """Start offsets, lengths and the data bytes of a binary or string array."""
    wide = pa.types.is_large_binary(keys.type) or pa.types.is_large_string(keys.type)
    _, offsets_buf, data_buf = keys.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64 if wide else np.int32)
    bounds = np.asarray(offsets[keys.offset:keys.offset + len(keys) + 1], dtype=np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return bounds[:-1], np.diff(bounds), data


def _mix_words(h: npt.NDArray[np.uint32], starts: npt.NDArray[np.int64],
               words: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> None:
    """murmur2's loop over whole 4-byte words; rows are sorted by length, longest first."""
    if not len(words) or words[0] == 0:
        return
    m = np.uint32(0x5BD1E995)
    little_endian = np.ndarray((len(data) - 3,), "<u4", buffer=data, strides=(1,))
    fewer = -words  # ascending, so the rows still mixing are a prefix
    for i in range(int(words[0])):
        active = int(np.searchsorted(fewer, -i, side="left"))
        k = little_endian[starts[:active] + 4 * i] * m
        k ^= k >> np.uint32(24)
        h[:active] = (h[:active] * m) ^ (k * m)


def _mix_tail(h: npt.NDArray[np.uint32], starts: npt.NDArray[np.int64],
              lengths: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> None:
    """murmur2's last 1-3 bytes and final avalanche."""
    m = np.uint32(0x5BD1E995)
    extra, tail = lengths & 3, starts + (lengths & ~3)
    for need, shift in ((3, 16), (2, 8), (1, 0)):
        rows = extra >= need
        h[rows] ^= data[tail[rows] + need - 1].astype(np.uint32) << np.uint32(shift)
    h[extra >= 1] *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)


def murmur2(keys: pa.Array) -> npt.NDArray[np.uint32]:
    """Java's ``Utils.murmur2`` of each value of ``keys`` (binary or string, no nulls).

    Vectorised over rows: rows are sorted by length so that the rows still consuming
    4-byte words are always a prefix, one NumPy pass per word position.

    Example:
        >>> int(murmur2(pa.array([b"21"]))[0].astype(np.int32))  # Kafka's UtilsTest
        -973932308
    """
    starts, lengths, data = _binary_layout(keys)
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    h = np.uint32(0x9747B28C) ^ lengths.astype(np.uint32)
    _mix_words(h, starts, lengths // 4, data)
    _mix_tail(h, starts, lengths, data)
    out = np.empty_like(h)
    out[order] = h
    return out


def key_partitions(keys: pa.Array, partitions: int) -> npt.NDArray[np.int64]:
    """The partition Java's default partitioner picks for each key (no nulls)."""
    positive = murmur2(keys) & np.uint32(0x7FFFFFFF)
    return (positive % np.uint32(partitions)).astype(np.int64)


def _as_bytes(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array of the column, strings viewed as binary (the bytes Kafka gets)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(array.type):
        return array.cast(pa.binary())
    if pa.types.is_large_string(array.type):
        return array.cast(pa.large_binary())
    return array


def _lengths(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """Byte length of each value, 0 for nulls: Arrow's ``binary_length``, joined in
    Arrow's memory and read from its buffer. ``fill_null`` with a Python 0 (a scalar) and
    ``ChunkedArray.to_numpy`` import pandas on first use: ~0.5 s of a fresh process's
    first Kafka batch."""
    counted = [pc.binary_length(chunk) for chunk in column.chunks]
    if not counted:
        return np.zeros(0, np.int64)
    joined = counted[0] if len(counted) == 1 else pa.concat_arrays(counted)
    width = np.int64 if pa.types.is_int64(joined.type) else np.int32
    raw = np.frombuffer(joined.buffers()[1], width)[joined.offset:joined.offset + len(joined)]
    if not joined.null_count:
        return raw.astype(np.int64, copy=False)
    lengths = raw.astype(np.int64)  # a copy: a null's slot holds any value
    valid = np.unpackbits(np.frombuffer(joined.buffers()[0], np.uint8), bitorder="little")
    lengths[valid[joined.offset:joined.offset + len(joined)] == 0] = 0
    return lengths


def _header_bytes(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """Bytes the headers of each row add: key and value lengths plus varints."""
    out = []
    for chunk in column.chunks:
        items = chunk.flatten()  # struct<key, value> of all rows, nulls dropped
        sizes = _lengths(pa.chunked_array([items.field("key")])) + _lengths(
            pa.chunked_array([items.field("value")])) + 10
        ends = np.concatenate([[0], np.cumsum(sizes)])
        offsets = np.asarray(chunk.offsets.to_numpy(), dtype=np.int64)
        offsets = offsets - offsets[0]
        out.append(ends[offsets[1:]] - ends[offsets[:-1]])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def row_bytes(table: pa.Table) -> npt.NDArray[np.int64]:
    """An upper bound of each row's encoded size in a record batch."""
    size = _lengths(table.column("value")) + _RECORD_OVERHEAD
    if "key" in table.column_names:
        size += _lengths(table.column("key"))
    if "headers" in table.column_names:
        size += _header_bytes(table.column("headers"))
    return size


def _explicit_partitions(table: pa.Table) -> npt.NDArray[np.int64]:
    if "partition" not in table.column_names:
        return np.full(table.num_rows, -1, np.int64)
    column = pc.fill_null(table.column("partition").cast(pa.int64()), -1)
    return np.array(column.to_numpy(), dtype=np.int64)  # a writable copy


def _sticky_runs(sizes: npt.NDArray[np.int64], partitions: int,
                 batch_bytes: int) -> int:
    """How many partitions keyless rows spread over, like Java's sticky partitioner: a
    small table stays on one partition, a large one fills every partition."""
    return min(partitions, max(1, math.ceil(int(sizes.sum()) / batch_bytes)))


def _sticky_partitions(sizes: npt.NDArray[np.int64], partitions: int, start: int,
                       batch_bytes: int) -> npt.NDArray[np.int64]:
    """Keyless rows in contiguous runs of equal length, one run per partition used."""
    runs = _sticky_runs(sizes, partitions, batch_bytes)
    run = np.arange(len(sizes), dtype=np.int64) * runs // max(len(sizes), 1)
    return (start + run) % partitions


def _sticky_slices(table: pa.Table, sizes: npt.NDArray[np.int64], partitions: int,
                   start: int, batch_bytes: int,
                   ) -> dict[int, tuple[pa.Table, npt.NDArray[np.int64]]]:
    """:func:`_sticky_partitions` for a table of keyless rows only, as zero-copy slices."""
    n, runs = table.num_rows, _sticky_runs(sizes, partitions, batch_bytes)
    bounds = [(j * n + runs - 1) // runs for j in range(runs + 1)]
    return {(start + j) % partitions: (table.slice(a, b - a), sizes[a:b])
            for j, (a, b) in enumerate(itertools.pairwise(bounds)) if b > a}


def assign_partitions(table: pa.Table, sizes: npt.NDArray[np.int64], partitions: int,
                      start: int, batch_bytes: int) -> npt.NDArray[np.int64]:
    """The partition of each row: its ``partition`` column where set, else murmur2 of
    its key, else sticky runs over the partitions starting at ``start``.

    Example:
        >>> t = pa.table({"value": [b"x"] * 4, "key": [b"a", None, b"b", None],
        ...               "partition": pa.array([None, 2, None, None], pa.int32())})
        >>> assign_partitions(t, row_bytes(t), 3, 0, 1000).tolist()
        [1, 2, 2, 0]
    """
    out = _explicit_partitions(table)
    if "key" in table.column_names:
        keyed = (out < 0) & np.asarray(table.column("key").is_valid().to_numpy(), dtype=bool)
        if keyed.any():
            keys = _as_bytes(table.column("key")).filter(pa.array(keyed))
            out[keyed] = key_partitions(keys, partitions)
    rest = out < 0
    if rest.any():
        out[rest] = _sticky_partitions(sizes[rest], partitions, start, batch_bytes)
    return out


def _split_by_partition(table: pa.Table, sizes: npt.NDArray[np.int64],
                        assignment: npt.NDArray[np.int64],
                        ) -> dict[int, tuple[pa.Table, npt.NDArray[np.int64]]]:
    """Rows grouped by partition, in their order (keyless runs stay zero-copy slices)."""
    if not len(assignment):
        return {}
    order = None
    if np.any(assignment[1:] < assignment[:-1]):
        order = np.argsort(assignment, kind="stable")
        table, sizes, assignment = table.take(pa.array(order)), sizes[order], assignment[order]
    cuts = np.flatnonzero(np.diff(assignment)) + 1
    bounds = [0, *cuts.tolist(), len(assignment)]
    return {int(assignment[a]): (table.slice(a, b - a), sizes[a:b])
            for a, b in itertools.pairwise(bounds)}


def _split_by_topic(table: pa.Table, topic: str | None) -> dict[str, pa.Table]:
    """Rows grouped by their topic; option ``topic`` wins over the column (Spark)."""
    if topic is not None:
        return {topic: table}
    column = table.column("topic")
    if column.null_count:
        raise AnalysisException("A row has a null 'topic' and no option 'topic' is set; "
                                "filter such rows out or set option 'topic'.",
                                error_class="INVALID_SCHEMA")
    names = pc.unique(column).to_pylist()
    if len(names) == 1:
        return {str(names[0]): table}
    return {str(name): table.filter(pc.equal(column, name)) for name in names}


# ---------------------------------------------------------------- record batches


def _column_slice(column: pa.ChunkedArray, start: int, stop: int) -> pa.Array:
    """Rows ``[start, stop)`` as one array, without a copy when one chunk holds them."""
    part = column.slice(start, stop - start)
    return part.chunk(0) if part.num_chunks == 1 else part.combine_chunks()


def _batch_bounds(sizes: npt.NDArray[np.int64], batch_bytes: int) -> list[int]:
    """Row offsets cutting the rows into batches of at most ``batch_bytes`` (a larger
    row is a batch of its own)."""
    ends = np.cumsum(sizes)
    bounds, start = [0], 0
    while start < len(sizes):
        before = int(ends[start - 1]) if start else 0
        stop = int(np.searchsorted(ends, before + batch_bytes, side="right"))
        start = max(stop, start + 1)
        bounds.append(start)
    return bounds


def _add_sequence(sequence: int, records: int) -> int:
    return (sequence + records) % _SEQUENCE_MODULUS


@dataclass(slots=True)
class _Batch:
    """One encoded record batch and the sequence number it starts at."""

    partition: Partition
    base_sequence: int
    records: int
    payload: bytes | memoryview


@dataclass(frozen=True)
class _Identity:
    """What every batch of the producer carries."""

    producer_id: int
    epoch: int
    compression: str | None


class _PartitionWriter:
    """One partition's rows of a transaction, encoded into batches on demand."""

    def __init__(self, partition: Partition, rows: pa.Table, sizes: npt.NDArray[np.int64],
                 first_sequence: int, batch_bytes: int) -> None:
        self.partition = partition
        self._rows = rows
        self._bounds = _batch_bounds(sizes, batch_bytes)
        self._next = 0
        self.next_sequence = first_sequence
        self.retries: deque[_Batch] = deque()

    @property
    def has_work(self) -> bool:
        return bool(self.retries) or self._next < len(self._bounds) - 1

    def next_batch(self, identity: _Identity) -> _Batch:
        """The oldest batch to resend, else the next one encoded."""
        if self.retries:
            return self.retries.popleft()
        start, stop = self._bounds[self._next], self._bounds[self._next + 1]
        self._next += 1
        batch = _Batch(self.partition, self.next_sequence, stop - start,
                       self._encode(start, stop, identity, self.next_sequence))
        self.next_sequence = _add_sequence(self.next_sequence, stop - start)
        return batch

    def _encode(self, start: int, stop: int, identity: _Identity,
                sequence: int) -> bytes | memoryview:
        columns = {name: _column_slice(self._rows.column(name), start, stop)
                   for name in ("value", "key", "headers") if name in self._rows.column_names}
        return encode_batch_view(columns["value"], columns.get("key"), columns.get("headers"),
                            timestamp_ms=int(time.time() * 1000),
                            producer_id=identity.producer_id, producer_epoch=identity.epoch,
                            base_sequence=sequence, transactional=True,
                            compression=identity.compression)


# ---------------------------------------------------------------- the network


class _Deadline:
    """A point in time ``timeout_ms`` ahead, moved forward whenever progress is made."""

    def __init__(self, timeout_ms: int) -> None:
        self._timeout_s = timeout_ms / 1000
        self._at = time.monotonic() + self._timeout_s

    def progress(self) -> None:
        self._at = time.monotonic() + self._timeout_s

    def remaining_s(self) -> float:
        return max(0.0, self._at - time.monotonic())


class _Network:
    """kafka-python's selector and connection manager, driven from the caller's thread.

    All waits take a :class:`_Deadline`; past it, a step fails with
    :class:`KafkaUnavailableError` naming the brokers and the timeout option.
    """

    def __init__(self, settings: ProducerSettings) -> None:
        self._settings = settings
        self._conn = Connections(
            settings.client_id, bootstrap_servers=settings.bootstrap,
            request_timeout_ms=min(settings.request_timeout_ms, settings.timeout_ms),
            reconnect_backoff_max_ms=1000,
            max_in_flight_requests_per_connection=settings.max_in_flight + 3)
        self.manager = self._conn.manager
        self._topics: set[str] = set()

    @property
    def cluster(self) -> Any:
        return self._conn.cluster

    def close(self) -> None:
        self._conn.close()

    def unavailable(self, what: str, detail: str) -> Exception:
        s = self._settings
        return unavailable_error(what, s.bootstrap, s.timeout_ms, s.timeout_option, detail)

    def bootstrap(self, deadline: _Deadline) -> None:
        if self.manager.bootstrapped:
            return
        try:
            self.manager.bootstrap(timeout_ms=max(1.0, deadline.remaining_s() * 1000))
        except kafka_errors.KafkaError as exc:
            raise self.unavailable("bootstrap", repr(exc)) from None

    def send(self, request: Any, node: Any = None) -> Future:
        return self._conn.send(request, node)

    def wait(self, future: Future, deadline: _Deadline, what: str) -> None:
        """Poll until ``future`` is done; past the deadline it counts as retriable."""
        self._conn.poll(deadline.remaining_s(), future)
        if not future.is_done:
            raise _Retry(f"{what}: no answer")

    def idle(self, seconds: float) -> None:
        """Sleep while connections keep making progress."""
        self._conn.idle(seconds)

    def flush(self) -> None:
        """Hand queued bytes to the sockets (and take in responses) without waiting."""
        self._conn.poll(0)

    def retry(self, what: str, attempt: Callable[[], T], deadline: _Deadline) -> T:
        """``attempt()`` until it stops raising :class:`_Retry`, with backoff."""
        delay = _BACKOFF_S
        while True:
            try:
                return attempt()
            except _Retry as retry:
                if deadline.remaining_s() <= 0:
                    raise self.unavailable(what, str(retry)) from None
                level = logging.WARNING if delay >= _MAX_BACKOFF_S / 2 else logging.DEBUG
                _log.log(level, "Kafka %s: retrying in %.2fs (%s)", what, delay, retry)
                if retry.refresh:
                    self.cluster.request_update()
                self.idle(min(delay, deadline.remaining_s()))
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def call(self, request: Any, node: Any, what: str, deadline: _Deadline) -> Any:
        """One request's response; a failed request raises :class:`_Retry` or fails."""
        future = self.send(request, node)
        self.wait(future, deadline, what)
        if future.exception is not None:
            _check_exception(future.exception, what)
        return future.value

    def topic_partitions(self, topic: str, deadline: _Deadline) -> int:
        """The number of partitions of ``topic``, from metadata (refreshed if unknown)."""
        def attempt() -> int:
            if not self.cluster.partitions_for_topic(topic):
                update = (self.cluster.request_update() if topic in self._topics
                          else self.cluster.add_topic(topic))
                self._topics.add(topic)
                self.wait(update, deadline, f"metadata of topic {topic!r}")
            known = self.cluster.partitions_for_topic(topic)
            if not known:
                raise _Retry(f"metadata of topic {topic!r}: unknown topic or no partitions")
            return len(known)
        return self.retry(f"metadata for topic {topic!r}", attempt, deadline)

    def leader(self, partition: Partition, deadline: _Deadline) -> Any:
        """The node id leading ``partition``, waiting for metadata naming one."""
        def attempt() -> Any:
            node = self.cluster.leader_for_partition(TopicPartition(*partition))
            if node is None or node == -1:
                raise _Retry(f"no leader known for {partition[0]}-{partition[1]}",
                             refresh=True)
            return node
        return self.retry(f"metadata for {partition[0]}-{partition[1]}", attempt, deadline)


# ---------------------------------------------------------------- producing


@dataclass
class _InFlight:
    """A sent Produce request and the batches it carries."""

    node: Any
    future: Future
    batches: list[_Batch]


class _ProduceRun:
    """The batches of one :meth:`TransactionalProducer.produce`, pipelined per broker.

    At most ``max_in_flight`` requests per broker, each with at most one batch per
    partition, so a partition never has more batches in flight than Kafka's
    idempotence window (5) and they arrive in sequence order. A failed batch stops the
    round: everything in flight is awaited, failed batches are queued again in sequence
    order, metadata is refreshed and the next round resends them first.
    """

    def __init__(self, net: _Network, writers: list[_PartitionWriter], identity: _Identity,
                 settings: ProducerSettings) -> None:
        self._net = net
        self._writers = writers
        self._identity = identity
        self._settings = settings
        self._in_flight: deque[_InFlight] = deque()

    def run(self, deadline: _Deadline) -> None:
        delay = _BACKOFF_S
        while any(w.has_work for w in self._writers):
            failures = self._round(deadline)
            if failures:
                self._requeue(failures)
                if deadline.remaining_s() <= 0:
                    raise self._net.unavailable("produce", failures[0][1])
                _log.warning("Kafka produce: resending %d batches in %.2fs (%s)",
                             len(failures), delay, failures[0][1])
                self._net.cluster.request_update()
                self._net.idle(min(delay, deadline.remaining_s()))
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _round(self, deadline: _Deadline) -> list[tuple[_Batch, str]]:
        """Send until all is acknowledged or something failed; then drain."""
        by_node = self._by_leader(deadline)
        failures: list[tuple[_Batch, str]] = []
        fatal: list[Exception] = []
        try:
            while not failures and not fatal:
                self._fill(by_node)
                if not self._in_flight:
                    break
                self._await_oldest(deadline, failures, fatal)
        finally:
            drained = self._drain(deadline, failures, fatal)
        if not drained:
            raise self._net.unavailable("produce", "requests not answered")
        if fatal:
            raise fatal[0]
        return self._judge_out_of_order(failures)

    @property
    def in_flight_left(self) -> bool:
        """Requests of unknown fate remain: an abort marker could overtake them."""
        return bool(self._in_flight)

    def _drain(self, deadline: _Deadline, failures: list[tuple[_Batch, str]],
               fatal: list[Exception]) -> bool:
        """Await every request still in flight, within the deadline; False if some
        were left unanswered."""
        while self._in_flight:
            try:
                self._await_oldest(deadline, failures, fatal)
            except KafkaUnavailableError:
                return False
        return True

    def _by_leader(self, deadline: _Deadline) -> dict[Any, list[_PartitionWriter]]:
        by_node: dict[Any, list[_PartitionWriter]] = {}
        for writer in self._writers:
            if writer.has_work:
                by_node.setdefault(self._net.leader(writer.partition, deadline), []).append(writer)
        return by_node

    def _fill(self, by_node: dict[Any, list[_PartitionWriter]]) -> None:
        """Send requests to every broker with work until its pipeline is full."""
        for node, writers in by_node.items():
            while self._count(node) < self._settings.max_in_flight:
                batches = self._next_batches(writers)
                if not batches:
                    break
                self._send(node, batches)

    def _count(self, node: Any) -> int:
        return sum(f.node == node for f in self._in_flight)

    def _next_batches(self, writers: list[_PartitionWriter]) -> list[_Batch]:
        """At most one batch per partition, within ``request_bytes``; partitions take
        turns at the front so that a capped request does not always favour the same."""
        batches: list[_Batch] = []
        size = 0
        for writer in [w for w in writers if w.has_work]:
            if batches and size >= self._settings.request_bytes - self._settings.batch_bytes:
                break
            batch = writer.next_batch(self._identity)
            batches.append(batch)
            size += len(batch.payload)
        if len(writers) > 1:
            writers.append(writers.pop(0))
        return batches

    def _send(self, node: Any, batches: list[_Batch]) -> None:
        topics: dict[str, list[Any]] = {}
        for batch in batches:
            topics.setdefault(batch.partition[0], []).append(
                ProduceRequest.TopicProduceData.PartitionProduceData(
                    index=batch.partition[1], records=batch.payload))
        request = ProduceRequest(
            transactional_id=self._settings.transactional_id, acks=-1,
            timeout_ms=min(self._settings.request_timeout_ms, self._settings.timeout_ms),
            topic_data=[ProduceRequest.TopicProduceData(name=name, partition_data=parts)
                        for name, parts in topics.items()],
            min_version=3, max_version=9)
        self._in_flight.append(_InFlight(node, self._net.send(request, node), batches))
        self._net.flush()

    def _await_oldest(self, deadline: _Deadline, failures: list[tuple[_Batch, str]],
                      fatal: list[Exception]) -> None:
        """Wait for the oldest request, then judge every request that is done."""
        try:
            self._net.wait(self._in_flight[0].future, deadline, "produce")
        except _Retry:
            raise self._net.unavailable(
                "produce", f"no answer from node {self._in_flight[0].node}") from None
        done = [f for f in self._in_flight if f.future.is_done]
        self._in_flight = deque(f for f in self._in_flight if not f.future.is_done)
        for request in done:
            self._judge(request, deadline, failures, fatal)

    def _judge(self, request: _InFlight, deadline: _Deadline,
               failures: list[tuple[_Batch, str]], fatal: list[Exception]) -> None:
        if request.future.exception is not None:
            try:
                _check_exception(request.future.exception, "produce")
            except _Retry as retry:
                failures.extend((batch, str(retry)) for batch in request.batches)
            except UnboundedError as exc:
                fatal.append(exc)
            return
        codes = _partition_codes(request.future.value)
        for batch in request.batches:
            if self._judge_batch(batch, codes.get(batch.partition, -1), failures, fatal):
                deadline.progress()  # only stored batches count: retriable refusals do not

    def _judge_batch(self, batch: _Batch, code: int, failures: list[tuple[_Batch, str]],
                     fatal: list[Exception]) -> bool:
        """Whether the broker stored ``batch``; failures are collected."""
        if code in _OK_CODES:
            return True
        what = f"produce to {batch.partition[0]}-{batch.partition[1]}"
        if code == _OUT_OF_ORDER:
            failures.append((batch, f"{what}: OutOfOrderSequenceNumberError"))
            return False
        try:
            _check_codes([code], what, self._settings.transactional_id)
        except _Retry as retry:
            failures.append((batch, str(retry)))
        except UnboundedError as exc:
            fatal.append(exc)
        return False

    def _judge_out_of_order(self, failures: list[tuple[_Batch, str]],
                            ) -> list[tuple[_Batch, str]]:
        """An out-of-order batch is retried only behind an earlier failed batch of its
        partition (it was refused because that one was missing); alone, the broker
        lost this producer's state and the transaction cannot be trusted."""
        lowest: dict[Partition, int] = {}
        for batch, detail in failures:
            if "OutOfOrder" not in detail:
                lowest[batch.partition] = min(lowest.get(batch.partition, batch.base_sequence),
                                              batch.base_sequence)
        for batch, detail in failures:
            first = lowest.get(batch.partition)
            if "OutOfOrder" in detail and (first is None or first > batch.base_sequence):
                raise _failed(f"{detail} at sequence {batch.base_sequence}")
        return failures

    def _requeue(self, failures: list[tuple[_Batch, str]]) -> None:
        writers = {w.partition: w for w in self._writers}
        for batch, _ in sorted(failures, key=lambda f: f[0].base_sequence, reverse=True):
            writers[batch.partition].retries.appendleft(batch)


def _partition_codes(response: Any) -> dict[Partition, int]:
    return {(topic.name, part.index): part.error_code
            for topic in response.responses for part in topic.partition_responses}


# ---------------------------------------------------------------- the producer


class TransactionalProducer:
    """A Kafka transactional producer for Arrow tables (see the module docstring).

    Not thread-safe. Use: ``init_transactions()`` once, then per transaction
    ``begin_transaction()``, ``produce(table, topic)`` (any number of times),
    optionally ``send_offsets_to_transaction(group, offsets)``, and
    ``commit_transaction()`` or ``abort_transaction()``; ``close()`` at the end.
    """

    def __init__(self, settings: ProducerSettings) -> None:
        self._settings = settings
        self._net = _Network(settings)
        self._identity: _Identity | None = None
        self._sequences: dict[Partition, int] = {}
        self._sticky: dict[str, int] = {}
        self._partitions: set[Partition] = set()
        self._offsets_added = False
        self._in_transaction = False
        self._failed: str | None = None
        self._abandoned = False  # requests of unknown fate may still reach the broker
        self._coordinators: dict[tuple[int, str], Any] = {}

    @property
    def producer_id(self) -> int:
        return self._identity.producer_id if self._identity else -1

    @property
    def epoch(self) -> int:
        return self._identity.epoch if self._identity else -1

    def next_sequence(self, topic: str, partition: int) -> int:
        """The sequence number the next batch to ``topic``-``partition`` starts at."""
        return self._sequences.get((topic, partition), 0)

    # -- lifecycle

    def init_transactions(self) -> None:
        """Get a producer id and epoch for the transactional id, fencing older producers
        with it and completing the transaction they left open."""
        deadline = self._deadline()
        self._net.bootstrap(deadline)
        request = InitProducerIdRequest(
            transactional_id=self._settings.transactional_id,
            transaction_timeout_ms=self._settings.transaction_timeout_ms,
            producer_id=-1, producer_epoch=-1, max_version=4)
        response = self._coordinated(self._txn_coordinator, request, "InitProducerId",
                                     _error_code, deadline)
        self._identity = _Identity(response.producer_id, response.producer_epoch,
                                   self._settings.compression)
        self._sequences.clear()
        self._reset_transaction()
        _log.info("Kafka producer %r initialised: producer id %d, epoch %d",
                  self._settings.transactional_id, response.producer_id,
                  response.producer_epoch)

    def begin_transaction(self) -> None:
        self._require(initialised=True, in_transaction=False)
        self._reset_transaction()
        self._in_transaction = True

    def close(self) -> None:
        """Close the connections; a transaction still open is aborted by the next
        producer with the same transactional id (or by the transaction timeout)."""
        self._net.close()

    # -- inside a transaction

    def produce(self, table: pa.Table, topic: str | None = None) -> None:
        """Write the rows of ``table`` (columns ``value``, optional ``key``, ``topic``,
        ``partition``, ``headers``); returns when every batch is acknowledged."""
        self._require(initialised=True, in_transaction=True)
        if table.num_rows == 0:
            return
        deadline = self._deadline()
        writers = self._writers(table, topic, deadline)
        assert self._identity is not None
        run = _ProduceRun(self._net, writers, self._identity, self._settings)
        try:
            self._add_partitions([w.partition for w in writers], deadline)
            run.run(deadline)
        except Exception as exc:
            self._failed = str(exc)
            self._abandoned = isinstance(exc, KafkaUnavailableError) or run.in_flight_left
            raise
        for writer in writers:
            self._sequences[writer.partition] = writer.next_sequence

    def send_offsets_to_transaction(self, group_id: str,
                                    offsets: Mapping[Partition, int]) -> None:
        """Commit ``offsets`` for the consumer group ``group_id`` with the transaction
        (visible only if it commits). The producer is not a member of the group."""
        self._require(initialised=True, in_transaction=True)
        deadline = self._deadline()
        try:
            if not self._offsets_added:
                self._add_offsets(group_id, deadline)
            self._txn_offset_commit(group_id, offsets, deadline)
        except Exception as exc:
            self._failed = str(exc)
            raise

    def commit_transaction(self) -> None:
        """Make everything written in the transaction visible, atomically."""
        self._require(initialised=True, in_transaction=True)
        if self._failed is not None:
            raise _failed(f"cannot commit after an earlier failure ({self._failed}); "
                          "abort the transaction")
        self._end(commit=True)

    def abort_transaction(self) -> None:
        """Discard the transaction. After a failure the producer must be initialised
        again, because the broker may hold batches whose sequence numbers it lost; after
        a timeout nothing is sent (an abort marker could overtake late batches) and the
        next ``init_transactions`` aborts the transaction on the broker."""
        self._require(initialised=True, in_transaction=True)
        failed = self._failed is not None
        if self._abandoned:
            self._reset_transaction()
        else:
            self._end(commit=False)
        if failed:
            self._identity = None

    # -- helpers

    @property
    def _txn_coordinator(self) -> tuple[int, str]:
        return _TRANSACTION, self._settings.transactional_id

    def _deadline(self) -> _Deadline:
        return _Deadline(self._settings.timeout_ms)

    def _require(self, *, initialised: bool, in_transaction: bool) -> None:
        if initialised and self._identity is None:
            raise UnboundedError("The Kafka producer is not initialised; call "
                                 "init_transactions() first.", error_class="KAFKA_PRODUCER_STATE")
        if in_transaction != self._in_transaction:
            state = "no transaction is open" if in_transaction else "a transaction is open"
            raise UnboundedError(f"Kafka producer misuse: {state}.",
                                 error_class="KAFKA_PRODUCER_STATE")

    def _reset_transaction(self) -> None:
        self._partitions = set()
        self._offsets_added = False
        self._in_transaction = False
        self._failed = None
        self._abandoned = False

    def _writers(self, table: pa.Table, topic: str | None,
                 deadline: _Deadline) -> list[_PartitionWriter]:
        writers = []
        for name, rows in _split_by_topic(table, topic).items():
            count = self._net.topic_partitions(name, deadline)
            sizes = row_bytes(rows)
            start = self._sticky.get(name, 0)
            self._sticky[name] = (start + 1) % count
            for p, (part, part_sizes) in self._by_partition(name, rows, sizes, count,
                                                            start).items():
                writers.append(_PartitionWriter((name, p), part, part_sizes,
                                                self.next_sequence(name, p),
                                                self._settings.batch_bytes))
        return writers

    def _by_partition(self, topic: str, rows: pa.Table, sizes: npt.NDArray[np.int64],
                      count: int, start: int,
                      ) -> dict[int, tuple[pa.Table, npt.NDArray[np.int64]]]:
        batch_bytes = self._settings.batch_bytes
        keyed = "key" in rows.column_names and rows.column("key").null_count < rows.num_rows
        if not keyed and "partition" not in rows.column_names:
            return _sticky_slices(rows, sizes, count, start, batch_bytes)
        assignment = assign_partitions(rows, sizes, count, start, batch_bytes)
        _check_range(topic, assignment, count)
        return _split_by_partition(rows, sizes, assignment)

    def _coordinated(self, coordinator: tuple[int, str], request: Any, what: str,
                     codes: Callable[[Any], Iterable[int]], deadline: _Deadline) -> Any:
        """Send ``request`` to the coordinator of ``(key type, key)`` until it succeeds;
        a moved coordinator is looked up again."""
        key_type, key = coordinator

        def attempt() -> Any:
            node = self._coordinator(key_type, key, deadline)
            try:
                response = self._net.call(request, node, what, deadline)
                _check_codes(codes(response), what, self._settings.transactional_id)
            except _Retry as retry:
                if retry.refresh:
                    self._coordinators.pop((key_type, key), None)
                raise
            return response
        return self._net.retry(what, attempt, deadline)

    def _coordinator(self, key_type: int, key: str, deadline: _Deadline) -> Any:
        known = self._coordinators.get((key_type, key))
        if known is None:
            known = self._find_coordinator(key_type, key, deadline)
            self._coordinators[(key_type, key)] = known
        return known

    def _find_coordinator(self, key_type: int, key: str, deadline: _Deadline) -> Any:
        request = FindCoordinatorRequest(key=key, key_type=key_type, coordinator_keys=[key])

        def attempt() -> Any:
            response = self._net.call(request, None, "FindCoordinator", deadline)
            result = response.coordinators[0] if response.coordinators else response
            _check_codes([result.error_code], f"FindCoordinator({key!r})",
                         self._settings.transactional_id)
            return self._net.cluster.add_coordinator(result, key_type, key,
                                                     synthesize_node_id=False)
        return self._net.retry(f"coordinator lookup for {key!r}", attempt, deadline)

    def _add_partitions(self, partitions: list[Partition], deadline: _Deadline) -> None:
        new = sorted(set(partitions) - self._partitions)
        if not new:
            return
        identity = self._identity
        assert identity is not None
        by_topic: dict[str, list[int]] = {}
        for name, p in new:
            by_topic.setdefault(name, []).append(p)
        topic_type = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
        request = AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=self._settings.transactional_id,
            v3_and_below_producer_id=identity.producer_id,
            v3_and_below_producer_epoch=identity.epoch,
            v3_and_below_topics=[topic_type(name=n, partitions=ps) for n, ps in by_topic.items()],
            max_version=3)
        self._coordinated(self._txn_coordinator, request,
                          "AddPartitionsToTxn", _add_partitions_codes, deadline)
        self._partitions.update(new)

    def _add_offsets(self, group_id: str, deadline: _Deadline) -> None:
        identity = self._identity
        assert identity is not None
        request = AddOffsetsToTxnRequest(
            transactional_id=self._settings.transactional_id,
            producer_id=identity.producer_id, producer_epoch=identity.epoch,
            group_id=group_id, max_version=3)
        self._coordinated(self._txn_coordinator, request,
                          "AddOffsetsToTxn", _error_code, deadline)
        self._offsets_added = True

    def _txn_offset_commit(self, group_id: str, offsets: Mapping[Partition, int],
                           deadline: _Deadline) -> None:
        identity = self._identity
        assert identity is not None
        topic_type = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
        part_type = topic_type.TxnOffsetCommitRequestPartition
        by_topic: dict[str, list[Any]] = {}
        for (name, p), offset in offsets.items():
            by_topic.setdefault(name, []).append(part_type(
                partition_index=p, committed_offset=offset, committed_leader_epoch=-1,
                committed_metadata=""))
        request = TxnOffsetCommitRequest(
            transactional_id=self._settings.transactional_id, group_id=group_id,
            producer_id=identity.producer_id, producer_epoch=identity.epoch,
            generation_id=-1, member_id="", group_instance_id=None,
            topics=[topic_type(name=n, partitions=ps) for n, ps in by_topic.items()],
            max_version=3)
        self._coordinated((_GROUP, group_id), request, "TxnOffsetCommit",
                          _txn_offset_codes, deadline)

    def _end(self, *, commit: bool) -> None:
        identity = self._identity
        assert identity is not None
        if self._partitions or self._offsets_added:
            request = EndTxnRequest(
                transactional_id=self._settings.transactional_id,
                producer_id=identity.producer_id, producer_epoch=identity.epoch,
                committed=commit, max_version=3)
            self._coordinated(self._txn_coordinator, request,
                              "EndTxn(commit)" if commit else "EndTxn(abort)",
                              _error_code, self._deadline())
        self._reset_transaction()


def _check_range(topic: str, assignment: npt.NDArray[np.int64], count: int) -> None:
    bad = assignment[(assignment < 0) | (assignment >= count)]
    if len(bad):
        raise _failed(f"a row's 'partition' is {int(bad[0])}, but topic {topic!r} has "
                      f"partitions 0 to {count - 1}")


def _error_code(response: Any) -> list[int]:
    return [response.error_code]


def _add_partitions_codes(response: Any) -> list[int]:
    return [p.partition_error_code for t in response.results_by_topic_v3_and_below
            for p in t.results_by_partition]


def _txn_offset_codes(response: Any) -> list[int]:
    return [p.error_code for t in response.topics for p in t.partitions]
