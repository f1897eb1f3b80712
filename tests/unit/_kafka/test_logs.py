"""librdkafka's messages reach Python logging, at most one per interval per facility."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from confluent_kafka import Consumer

from unbounded._kafka.common import as_client_conf
from unbounded._kafka.logs import LIBRDKAFKA_LOGGER, RateLimitedLog


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_repeats_within_the_interval_are_held_and_counted_in_the_next_message(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    limited = RateLimitedLog(logging.getLogger("t.rk"), interval_s=10.0, clock=clock)
    caplog.set_level(logging.DEBUG, logger="t.rk")
    for step in range(5):
        clock.now = 100.0 + step
        limited.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "refused")
    limited.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "rdkafka#consumer-1", "slow")
    clock.now = 110.0
    limited.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "refused")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "FAIL [rdkafka#consumer-1] refused"),
        (logging.WARNING, "REQTMOUT [rdkafka#consumer-1] slow"),
        (logging.ERROR, "FAIL [rdkafka#consumer-1] refused (4 similar messages suppressed)"),
    ]


def test_a_consumer_of_an_unreachable_broker_logs_through_python_logging_at_a_bounded_rate(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LIBRDKAFKA_LOGGER.name)
    consumer = Consumer(as_client_conf({
        "bootstrap.servers": f"127.0.0.1:{_closed_port()}", "group.id": "unreachable"}))
    try:
        consumer.subscribe(["nowhere"])
        deadline = time.monotonic() + 2.0  # raw librdkafka prints ~40 lines in this time
        while time.monotonic() < deadline:
            consumer.poll(0.1)
    finally:
        consumer.close()
    records = [r for r in caplog.records if r.name == LIBRDKAFKA_LOGGER.name]
    assert any("Connection refused" in r.getMessage() for r in records)
    keys = [tuple(map(str, r.args[:2])) for r in records if isinstance(r.args, tuple)]
    assert len(keys) == len(set(keys)), [r.getMessage() for r in records]
