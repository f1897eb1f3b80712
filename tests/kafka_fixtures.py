"""Pytest fixtures for tests that need a Kafka broker.

Import them into ``tests/conftest.py``::

    from kafka_fixtures import kafka_bootstrap, kafka_broker_process  # noqa: F401

``kafka_bootstrap`` is one broker for the whole session (or the cluster named by
``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``); ``kafka_broker_process`` is a private broker a
test may pause and resume (skipped when an external cluster is configured).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from unbounded.testing.broker import BOOTSTRAP_ENV, BrokerProcess, run_broker, started_broker

__all__ = ["PausableBroker", "kafka_bootstrap", "kafka_broker_process", "stopped"]

_STOP_TIMEOUT_S = 10.0


def stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (state T or t)."""
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:  # the thread exited meanwhile
            continue
    return all(state in ("T", "t") for state in states)


class PausableBroker:
    """A private broker whose :meth:`pause` returns only once the outage is real.

    kill(2) returns as soon as SIGSTOP is queued; the broker's threads stop one by one
    when they are next scheduled (milliseconds, far longer on a loaded machine), and until
    then a connected client is still answered. A test that pauses and then expects no
    answer must wait for every thread to stop.
    """

    def __init__(self, process: BrokerProcess) -> None:
        self.process = process
        self.bootstrap = process.bootstrap
        self.pid = process.pid

    def pause(self) -> None:
        """SIGSTOP the broker and wait until none of its threads can run."""
        self.process.pause()
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while not stopped(self.pid):
            if time.monotonic() > deadline:
                self.process.resume()
                raise AssertionError(f"the broker (pid {self.pid}) was sent SIGSTOP but not "
                                     f"every thread had stopped {_STOP_TIMEOUT_S:.0f}s later")
            time.sleep(0.001)

    def resume(self) -> None:
        self.process.resume()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a running broker, shared by the session."""
    pytest.importorskip("confluent_kafka")
    with run_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka_broker_process() -> Iterator[PausableBroker]:
    """A broker of the test's own, which the test may pause and resume."""
    if os.environ.get(BOOTSTRAP_ENV):
        pytest.skip(f"outage tests need a local broker; unset {BOOTSTRAP_ENV}")
    with started_broker() as broker:
        yield PausableBroker(broker)
