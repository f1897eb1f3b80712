"""Chaos over Kafka: any scenario of ``chaos.scenarios`` on a private broker
(:func:`on_broker`: the transactional sink, a Kafka source, or both), and the broker's
own faults over the Kafka sink (stateless query, file source): a proxy between engine and
broker that cuts, stalls and slows connections, including while a transaction commits;
the broker paused shorter and longer than the transaction timeout. Committed records are
read from the raw log."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from chaos.proxy import Proxy
from chaos.report import Row
from chaos.scenarios import Scenario, Size, SpecFactory, check, prepare
from chaos.supervisor import JobSpec, commit_count, run_to_end
from chaos.workload import Workload
from unbounded.testing.broker import (
    BrokerProcess,
    create_topic,
    produce_records,
    started_broker,
    unique_topic,
)

__all__ = ["kafka_broker", "kafka_broker_pause", "kafka_commit_cuts", "kafka_jobs",
           "kafka_network", "on_broker"]

_END_TXN = 26  # the Kafka API key of EndTxn


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[BrokerProcess, Proxy]]:
    """A private tansu broker reached only through a proxy."""
    proxy = Proxy()
    try:
        with started_broker(advertised_port=proxy.port) as broker:
            proxy.start(broker.port)
            yield broker, proxy
    finally:
        proxy.close()


def _spec(root: str, name: str, seed: int, size: Size, bootstrap: str, *,
          query: str = "stateless") -> tuple[JobSpec, Workload]:
    return kafka_jobs(root, bootstrap)(name, "kafka", query, seed, size)


def _input_topic(bootstrap: str, spec: JobSpec) -> str:
    """A one-partition topic holding the input files' lines, file after file."""
    topic = unique_topic("chaos-in")
    create_topic(bootstrap, topic)
    lines = []
    for name in sorted(os.listdir(spec.input)):
        with open(os.path.join(spec.input, name)) as f:
            lines += f.read().splitlines()
    produce_records(bootstrap, topic, lines)
    return topic


def kafka_jobs(root: str, bootstrap: str, *, source: str = "files") -> SpecFactory:
    """Jobs on the broker ``bootstrap``: a fresh output topic for the Kafka sink, and
    (``source="kafka"``) the input as a topic, one input file per batch."""
    def make(name: str, sink: str, query: str, seed: int,
             size: Size) -> tuple[JobSpec, Workload]:
        spec, work = prepare(root, name, sink, query, seed, size=size)
        spec = replace(spec, bootstrap=bootstrap)
        if sink == "kafka":
            spec = replace(spec, topic=unique_topic("chaos"))
            create_topic(bootstrap, spec.topic)
        if source == "kafka":
            env = (("CHAOS_KAFKA_INPUT", bootstrap), ("CHAOS_PER_FILE", str(size.per_file)))
            spec = replace(spec, source_topic=_input_topic(bootstrap, spec),
                           env=spec.env + env)
        return spec, work
    return make


def on_broker(scenario: Scenario, source: str) -> Scenario:
    """``scenario`` with its jobs on a private broker (Kafka sink, Kafka source or both)."""
    def run(sink: str, query: str, seed: int, *, root: str, size: Size) -> Row:
        with kafka_broker() as (broker, _proxy):
            row = scenario(sink, query, seed, root=root, size=size,
                           make=kafka_jobs(root, broker.bootstrap, source=source))
        row.source = source
        return row
    return run


def _disturb(proxy: Proxy, broker: BrokerProcess, rng: random.Random, stop: threading.Event,
             counter: list[int]) -> None:
    """Until ``stop``: cut, stall or slow the network, or pause the broker briefly."""
    while not stop.wait(rng.uniform(0.1, 0.4)):
        action = rng.choice(["cut", "stall", "slow", "pause"])
        counter[0] += 1
        if action == "cut":
            proxy.cut()
        elif action == "stall":
            proxy.stall(rng.uniform(0.2, 1.5))
        elif action == "slow":
            proxy.delay_s = rng.choice([0.0, 0.01, 0.05])
        else:
            broker.pause()
            stop.wait(rng.uniform(0.2, 2.0))  # shorter than the transaction timeout
            broker.resume()
    proxy.delay_s = 0.0


def kafka_network(seed: int, *, root: str, size: Size, query: str = "stateless") -> Row:
    """Network faults and short broker pauses while the job runs; runs that fail are
    restarted (with the faults still coming) until one finishes."""
    row, rng = Row("network faults", "kafka", query), random.Random(seed)
    with kafka_broker() as (broker, proxy):
        for i in range(size.repeats):
            spec, work = _spec(root, f"knet-{i}", seed + i, size, broker.bootstrap,
                               query=query)
            stop, counter = threading.Event(), [0]
            chaos = threading.Thread(target=_disturb,
                                     args=(proxy, broker, rng, stop, counter))
            chaos.start()
            try:
                code, failures = 1, 0
                while code != 0 and failures < 6:
                    code = run_to_end(spec, timeout_s=180).returncode
                    failures += code != 0
            finally:
                stop.set()
                chaos.join()
            row.faults += counter[0]
            row.detected += failures
            done = run_to_end(spec) if code != 0 else None
            check(row, spec, work, 0 if done is None else done.returncode)
    return row




def _until_done(spec: JobSpec, extra: dict[str, str] | None = None) -> tuple[int, int]:
    """Run until a run ends 0 (at most 6 runs): (last exit code, failed runs)."""
    code, failures = 1, 0
    while code != 0 and failures < 6:
        code = run_to_end(spec, extra, timeout_s=180).returncode
        failures += code != 0
    return code, failures


def kafka_commit_cuts(seed: int, *, root: str, size: Size, query: str = "stateless") -> Row:
    """Every connection cut at a transaction's commit request, before the broker gets it
    and right after it forwarded it (committed, unacknowledged)."""
    row = Row("cut at txn commit", "kafka", query)
    with kafka_broker() as (broker, proxy):
        for i in range(size.repeats):
            for after in (False, True):
                spec, work = _spec(root, f"kcommit-{i}-{int(after)}", seed + i, size,
                                   broker.bootstrap, query=query)
                proxy.arm_cut(_END_TXN, after)
                fired = proxy.fired
                code, failures = _until_done(spec)
                row.faults += proxy.fired - fired
                row.detected += failures
                check(row, spec, work, code)
    return row


def _pause_broker(broker: BrokerProcess, spec: JobSpec, pause_s: float,
                  rng: random.Random) -> None:
    deadline = time.monotonic() + 60
    while commit_count(spec.checkpoint) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))
    broker.pause()
    try:
        time.sleep(pause_s)
    finally:
        broker.resume()


def kafka_broker_pause(seed: int, *, root: str, size: Size, query: str = "stateless") -> Row:
    """The broker SIGSTOPped mid-run for 1 s and 5 s with a 2 s transaction timeout."""
    row, rng = Row("broker SIGSTOP", "kafka", query), random.Random(seed)
    timeout = {"CHAOS_TXN_TIMEOUT_MS": "2000", "UNBOUNDED_TEST_BATCH_DELAY": "0.2"}
    with kafka_broker() as (broker, _proxy):
        for i in range(size.repeats):
            for pause_s in (1.0, 5.0):
                spec, work = _spec(root, f"kpause-{i}-{pause_s:.0f}", seed + i, size,
                                   broker.bootstrap, query=query)
                pauser = threading.Thread(target=_pause_broker,
                                          args=(broker, spec, pause_s, rng))
                pauser.start()
                try:
                    code, failures = _until_done(spec, timeout)
                finally:
                    pauser.join()
                row.faults += 1
                row.detected += failures
                check(row, spec, work, code)
    return row
