"""The wire reader's choices that need no broker: which configs it serves, its Fetch
settings, and Spark's rows. Reads against a broker are in
``tests/streaming/test_kafka_wire_source.py``."""

from __future__ import annotations

import struct
import time
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from unbounded._kafka import fetch
from unbounded._kafka.common import wire_supported
from unbounded._kafka.fetch import (
    FetchRange,
    FetchSettings,
    read_range,
    spark_rows,
)
from unbounded._kafka.records import encode_batch
from unbounded.errors import AnalysisException, KafkaUnavailableError
from unbounded.sources.base import SourceContext
from unbounded.sources.kafka import (
    KafkaInputPartition,
    KafkaSource,
    kafka_read_schema,
    kafka_schema,
)

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.errors as kafka_errors
    from kafka.future import Future

PLAIN = {"bootstrap.servers": "b:9092"}


@pytest.mark.parametrize(("extra", "wire"), [
    ({}, True),
    ({"security.protocol": "PLAINTEXT"}, True),
    ({"security.protocol": "SASL_PLAINTEXT"}, False),
    ({"security.protocol": "ssl"}, False),
    ({"sasl.mechanism": "PLAIN"}, False),
    ({"ssl.ca.location": "/ca.pem"}, False),
])
def test_only_plaintext_configs_without_sasl_or_tls_settings_use_the_wire(
        extra: dict[str, str], wire: bool) -> None:
    assert wire_supported({**PLAIN, **extra}) is wire
    part = KafkaInputPartition("t", 0, 0, 1, {**PLAIN, **extra})
    assert part.uses_wire is wire


def test_the_reader_option_forces_a_reader_and_is_validated() -> None:
    assert not KafkaInputPartition("t", 0, 0, 1, PLAIN, reader="librdkafka").uses_wire
    assert KafkaInputPartition("t", 0, 0, 1, PLAIN, reader="wire").uses_wire
    base = {"kafka.bootstrap.servers": "b:9092", "subscribe": "t"}
    for options in ({"reader": "java"},
                    {"reader": "wire", "kafka.security.protocol": "SASL_SSL"}):
        with pytest.raises(AnalysisException, match="reader"):
            KafkaSource("kafka", SourceContext({**base, **options}, None, None))


def test_fetch_settings_come_from_the_consumer_config() -> None:
    given = FetchSettings.from_config({
        **PLAIN, "isolation.level": "read_uncommitted", "fetch.wait.max.ms": "100",
        "fetch.max.bytes": "1000", "max.partition.fetch.bytes": "500", "client.id": "me",
        "fetch.min.bytes": "7"})
    assert given == FetchSettings("b:9092", "me", 0, 100, 7, 1000, 500)
    default = FetchSettings.from_config(PLAIN)
    assert (default.isolation_level, default.max_wait_ms) == (1, 500)
    assert (default.max_bytes, default.partition_max_bytes) == (50 << 20, 16 << 20)
    assert default.manager_config()["receive_message_max_bytes"] > default.max_bytes
    huge = FetchSettings.from_config({**PLAIN, "fetch.max.bytes": str(1 << 40)})
    assert huge.max_bytes == 2**31 - 1


@dataclass(frozen=True)
class Columns:
    offsets: npt.NDArray[np.int64]
    timestamps_ms: npt.NDArray[np.int64]
    timestamp_types: npt.NDArray[np.int32]
    keys: pa.Array
    values: pa.Array
    headers: pa.Array | None


def _columns(headers: pa.Array | None) -> Columns:
    return Columns(np.array([5, 6, 7], np.int64), np.array([1000, 2000, 3000], np.int64),
                   np.array([0, 1, 0], np.int32),
                   pa.array([b"k", None, b""], pa.large_binary()),
                   pa.array([b"a", b"b", None], pa.large_binary()), headers)


def test_spark_rows_are_in_the_source_schema_with_null_for_no_headers() -> None:
    schema = kafka_schema(include_headers=True).to_arrow_schema()
    header_type = schema.field("headers").type
    headers = pa.array([[], [{"key": "h", "value": None}], None], header_type)
    table = spark_rows(_columns(headers), "topic", 3, schema)
    assert table.schema == schema
    assert table.to_pylist()[1] == {
        "key": None, "value": b"b", "topic": "topic", "partition": 3, "offset": 6,
        "timestamp": table.column("timestamp")[1].as_py(), "timestampType": 1,
        "headers": [{"key": "h", "value": None}]}
    assert table.column("headers").to_pylist() == [None, [{"key": "h", "value": None}], None]
    assert [t.timestamp() for t in table.column("timestamp").to_pylist()] == [1.0, 2.0, 3.0]
    plain = spark_rows(_columns(None), "topic", 3, kafka_schema().to_arrow_schema())
    assert plain.equals(table.drop_columns(["headers"]))


@pytest.mark.parametrize("topic", ["t", "exactly12byt", "a topic name over twelve bytes", ""])
def test_spark_rows_in_the_read_schema_are_views_of_the_same_rows(topic: str) -> None:
    spark = kafka_schema(include_headers=True).to_arrow_schema()
    headers = pa.array([[], [{"key": "h", "value": None}], None], spark.field("headers").type)
    viewed = spark_rows(_columns(headers), topic, 3, kafka_read_schema(include_headers=True))
    viewed.validate(full=True)
    assert viewed.schema == kafka_read_schema(include_headers=True)
    assert viewed.schema.field("topic").type == pa.string_view()
    assert viewed.cast(spark).equals(spark_rows(_columns(headers), topic, 3, spark))
    assert viewed.column("topic").to_pylist() == [topic] * 3


# ---------------------------------------------------------------- a scripted broker


def _blob(base: int, values: list[bytes]) -> bytes:
    batch = encode_batch(pa.array(values, pa.large_binary()), timestamp_ms=1_000)
    return struct.pack(">q", base) + batch[8:]  # the CRC does not cover the base offset


def _fetched(records: bytes = b"", error: int = 0, high: int = 100, start: int = 0,
             stable: int | None = None) -> SimpleNamespace:
    data = SimpleNamespace(partition_index=0, error_code=error, high_watermark=high,
                           last_stable_offset=high if stable is None else stable,
                           log_start_offset=start,
                           aborted_transactions=[], records=records)
    return SimpleNamespace(error_code=0, responses=[SimpleNamespace(topic="t",
                                                                    partitions=[data])])


def _listed(offset: int) -> SimpleNamespace:
    data = SimpleNamespace(partition_index=0, error_code=0, offset=offset)
    return SimpleNamespace(topics=[SimpleNamespace(name="t", partitions=[data])])


class ScriptedClient:
    """Stands in for the kafka-python client: each request gets the next scripted
    answer (a response, or an exception the request fails with)."""

    def __init__(self, answers: list[Any]) -> None:
        self.settings = FetchSettings.from_config(PLAIN)
        self.answers = answers
        self.sent: list[int] = []  # fetch offsets (-1 for other requests)
        self.refreshes = 0

    def send(self, request: Any, node: int) -> Future:
        topics = getattr(request, "topics", [])
        fetch_offset = getattr(topics[0].partitions[0], "fetch_offset", -1) if topics else -1
        self.sent.append(fetch_offset)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            return Future().failure(answer)
        return Future().success(answer)

    def wait(self, future: Future, deadline: float) -> bool:
        return bool(future.is_done)

    def leader(self, tp: Any) -> int:
        return 1

    def refresh(self, topic: str) -> Future:
        self.refreshes += 1
        return Future().success(None)

    def idle(self, seconds: float) -> None:
        pass

    def address(self, node: int) -> str:
        return "scripted:9092"

    def close(self) -> None:
        pass


def _read(client: ScriptedClient, start: int, until: int, monkeypatch: pytest.MonkeyPatch,
          on_data_loss: Any = None) -> pa.Table:
    monkeypatch.setattr(fetch, "_Client", lambda settings: client)
    spec = FetchRange("t", 0, start, until, PLAIN, kafka_schema().to_arrow_schema(),
                      poll_timeout_ms=1000)
    try:
        return read_range(spec, on_data_loss or _no_loss)
    finally:
        fetch.close_clients()


def _no_loss(message: str) -> None:
    raise AssertionError(message)


def test_the_next_fetch_is_sent_before_a_response_is_decoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = ScriptedClient([_fetched(_blob(0, [b"a", b"b", b"c"])),
                             _fetched(_blob(3, [b"d", b"e"]))])
    sent_at_decode: list[int] = []
    decode = fetch.decode_batches

    def spying(*args: Any, **kwargs: Any) -> Any:
        sent_at_decode.append(len(client.sent))
        return decode(*args, **kwargs)

    monkeypatch.setattr(fetch, "decode_batches", spying)
    table = _read(client, 1, 5, monkeypatch)
    assert table.column("value").to_pylist() == [b"b", b"c", b"d", b"e"]
    assert client.sent == [1, 3]
    assert sent_at_decode == [2, 2]


def test_a_leader_change_or_a_lost_connection_refreshes_the_metadata_and_retries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = ScriptedClient([_fetched(error=6),  # NOT_LEADER_OR_FOLLOWER
                             kafka_errors.KafkaConnectionError("socket disconnected"),
                             _fetched(error=3),  # UNKNOWN_TOPIC_OR_PARTITION
                             _fetched(_blob(0, [b"a", b"b"]))])
    table = _read(client, 0, 2, monkeypatch)
    assert table.column("value").to_pylist() == [b"a", b"b"]
    assert client.sent == [0, 0, 0, 0]
    assert client.refreshes >= 3


def test_a_broker_error_that_retrying_cannot_fix_fails_naming_the_partition(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = ScriptedClient([_fetched(error=29)])  # TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(RuntimeError, match=r"t-0 from broker scripted:9092.*AUTHORIZATION"):
        _read(client, 0, 2, monkeypatch)


@pytest.mark.parametrize(("stable", "why"), [
    (None, "no records arrived"),
    (2, "past the last stable offset 2: a transaction is still open"),
])
def test_a_broker_that_keeps_answering_nothing_fails_after_the_poll_timeout(
        monkeypatch: pytest.MonkeyPatch, stable: int | None, why: str) -> None:
    client = ScriptedClient([_fetched(high=5, stable=stable)] * 10_000)
    monkeypatch.setattr(ScriptedClient, "idle", lambda self, seconds: time.sleep(seconds))
    with pytest.raises(KafkaUnavailableError, match=r"offset 2 of t-0") as failure:
        _read(client, 2, 4, monkeypatch)
    assert why in str(failure.value)
    assert "kafkaConsumer.pollTimeoutMs" in str(failure.value)


def test_offsets_out_of_range_skip_to_the_log_start_or_stop_at_its_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lost: list[str] = []
    client = ScriptedClient([_fetched(error=1), _listed(4), _listed(9),  # OFFSET_OUT_OF_RANGE
                             _fetched(_blob(4, [b"e", b"f"])),
                             _fetched(error=1), _listed(4), _listed(6)])
    table = _read(client, 1, 8, monkeypatch, lost.append)
    assert table.column("offset").to_pylist() == [4, 5]
    assert lost == ["Offsets 1 to 4 of partition t-0 are gone (the log now starts at 4).",
                    "Partition t-0 ends at offset 6, but the batch needs offsets 6 to 8."]
