"""Pytest fixtures for tests that need a Kafka broker.

Import them into ``tests/conftest.py``::

    from kafka_fixtures import kafka_bootstrap, kafka_broker_process  # noqa: F401

``kafka_bootstrap`` is one broker for the whole session (or the cluster named by
``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``); ``kafka_broker_process`` is a private broker a
test may pause and resume (skipped when an external cluster is configured).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from unbounded.testing.broker import BOOTSTRAP_ENV, BrokerProcess, run_broker, started_broker

__all__ = ["kafka_bootstrap", "kafka_broker_process"]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a running broker, shared by the session."""
    pytest.importorskip("confluent_kafka")
    with run_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka_broker_process() -> Iterator[BrokerProcess]:
    """A broker of the test's own, which the test may SIGSTOP/SIGCONT."""
    if os.environ.get(BOOTSTRAP_ENV):
        pytest.skip(f"outage tests need a local broker; unset {BOOTSTRAP_ENV}")
    with started_broker() as broker:
        yield broker
