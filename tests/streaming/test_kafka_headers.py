"""Kafka headers with ``includeHeaders=true`` against a real broker: the column is
``array<struct<key: string, value: binary>>`` (never a map, so repeated keys and their
order survive), collected as a list of ``Row(key, value)``, NULL for a record without
headers, as PySpark 4.3 gives them; a Kafka sink writes such a column back unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from unbounded.sql import Row, SparkSession
from unbounded.sql import functions as F
from unbounded.testing.broker import create_topic, produce_records, unique_topic

pytestmark = pytest.mark.timeout(120)

HEADERS = [("h", b"1"), ("h", b"2"), ("g", b"")]  # a repeated key: a map would lose one


def _source(spark: SparkSession, bootstrap: str, topic: str, reader: str) -> Any:
    return (spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic).option("startingOffsets", "earliest")
            .option("reader", reader).option("includeHeaders", "true").load())


def _run_once(frame: Any, tmp_path: Any, **sink: str) -> list[Row]:
    seen: list[Row] = []
    writer = frame.writeStream.option("checkpointLocation", str(tmp_path / "cp"))
    if sink:
        writer = writer.format("kafka").options(**sink)
    else:
        writer = writer.foreachBatch(lambda df, _: seen.extend(df.orderBy("offset").collect()))
    query = writer.trigger(availableNow=True).start()
    query.awaitTermination(60)
    assert query.exception() is None
    return seen


@pytest.mark.parametrize("reader", ["wire", "librdkafka"])
def test_headers_collect_as_rows_in_order_and_null_without_headers(
        spark, kafka_bootstrap, tmp_path, reader) -> None:
    topic = unique_topic("hdr")
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, [b"a"], headers=HEADERS)
    produce_records(kafka_bootstrap, topic, [b"b"])
    frame = _source(spark, kafka_bootstrap, topic, reader)
    assert dict(frame.dtypes)["headers"] == "array<struct<key:string,value:binary>>"
    rows = _run_once(frame.select("offset", "value", "headers"), tmp_path)
    assert rows == [
        Row(offset=0, value=b"a", headers=[Row(key="h", value=b"1"), Row(key="h", value=b"2"),
                                           Row(key="g", value=b"")]),
        Row(offset=1, value=b"b", headers=None)]


def test_headers_index_and_explode_as_an_array(spark, kafka_bootstrap, tmp_path) -> None:
    topic = unique_topic("hdr-ops")
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, [b"a"], headers=HEADERS)
    frame = _source(spark, kafka_bootstrap, topic, "auto")
    first = frame.select("offset", F.col("headers")[1]["value"].alias("second"),
                         F.size("headers").alias("n"))
    assert _run_once(first, tmp_path / "one") == [Row(offset=0, second=b"2", n=3)]
    exploded = frame.select("offset", F.explode("headers").alias("h"))
    assert [r.h for r in _run_once(exploded, tmp_path / "two")] == [
        Row(key="h", value=b"1"), Row(key="h", value=b"2"), Row(key="g", value=b"")]


def test_a_kafka_sink_writes_read_headers_back_unchanged(spark, kafka_bootstrap,
                                                         tmp_path) -> None:
    source, target = unique_topic("hdr-in"), unique_topic("hdr-out")
    create_topic(kafka_bootstrap, source)
    create_topic(kafka_bootstrap, target)
    produce_records(kafka_bootstrap, source, [b"a"], headers=HEADERS)
    frame = _source(spark, kafka_bootstrap, source, "auto").select("value", "headers")
    _run_once(frame, tmp_path, **{"kafka.bootstrap.servers": kafka_bootstrap,
                                  "topic": target})
    assert _consume(kafka_bootstrap, target) == [(b"a", HEADERS)]


def _consume(bootstrap: str, topic: str) -> list[tuple[bytes, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"c-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.partition.eof": "true"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[tuple[bytes, Any]] = []
    while True:
        message = consumer.poll(30)
        if message is None or message.error() is not None:
            break
        found.append((message.value(), message.headers()))
    consumer.close()
    return found
