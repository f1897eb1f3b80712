"""Chaos over the Kafka transactional sink (stateless query, file source): crash points,
random SIGKILLs, and a proxy between engine and broker that cuts, stalls and slows
connections, including while a transaction commits; the broker paused shorter and longer
than the transaction timeout. Committed records are read from the raw log."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from chaos.proxy import Proxy
from chaos.report import Row
from chaos.scenarios import Size, check, prepare
from chaos.supervisor import JobSpec, commit_count, run_to_end, supervise
from chaos.workload import Workload
from unbounded.testing.broker import BrokerProcess, create_topic, started_broker, unique_topic
from unbounded.testing.faults import FAULT_POINTS

__all__ = ["kafka_broker", "kafka_broker_pause", "kafka_commit_cuts", "kafka_crash_points",
           "kafka_network"]

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


def _spec(root: str, name: str, seed: int, size: Size,
          bootstrap: str) -> tuple[JobSpec, Workload]:
    spec, work = prepare(root, name, "kafka", "stateless", seed, size=size)
    topic = unique_topic("chaos")
    create_topic(bootstrap, topic)
    return replace(spec, bootstrap=bootstrap, topic=topic), work


def kafka_crash_points(seed: int, *, root: str, size: Size) -> Row:
    """SIGKILL at each crash point (mid-sink-write: inside the open transaction)."""
    row, rng = Row("crash points", "kafka", "stateless"), random.Random(seed)
    with kafka_broker() as (broker, _proxy):
        for point in FAULT_POINTS:
            spec, work = _spec(root, f"kcrash-{point}", seed, size, broker.bootstrap)
            crashed = run_to_end(spec, {"UNBOUNDED_FAULT": f"{point}@{rng.randrange(1, 3)}"})
            row.faults += crashed.returncode == -9
            done = supervise(spec, rng, kills=0, first_killed=True)
            row.recoveries_s += done.recoveries_s
            check(row, spec, work, done.returncode)
    return row


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


def kafka_network(seed: int, *, root: str, size: Size) -> Row:
    """Network faults and short broker pauses while the job runs; runs that fail are
    restarted (with the faults still coming) until one finishes."""
    row, rng = Row("network faults", "kafka", "stateless"), random.Random(seed)
    with kafka_broker() as (broker, proxy):
        for i in range(size.repeats):
            spec, work = _spec(root, f"knet-{i}", seed + i, size, broker.bootstrap)
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


def kafka_commit_cuts(seed: int, *, root: str, size: Size) -> Row:
    """Every connection cut at a transaction's commit request, before the broker gets it
    and right after it forwarded it (committed, unacknowledged)."""
    row = Row("cut at txn commit", "kafka", "stateless")
    with kafka_broker() as (broker, proxy):
        for i in range(size.repeats):
            for after in (False, True):
                spec, work = _spec(root, f"kcommit-{i}-{int(after)}", seed + i, size,
                                   broker.bootstrap)
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


def kafka_broker_pause(seed: int, *, root: str, size: Size) -> Row:
    """The broker SIGSTOPped mid-run for 1 s and 5 s with a 2 s transaction timeout."""
    row, rng = Row("broker SIGSTOP", "kafka", "stateless"), random.Random(seed)
    timeout = {"CHAOS_TXN_TIMEOUT_MS": "2000", "UNBOUNDED_TEST_BATCH_DELAY": "0.2"}
    with kafka_broker() as (broker, _proxy):
        for i in range(size.repeats):
            for pause_s in (1.0, 5.0):
                spec, work = _spec(root, f"kpause-{i}-{pause_s:.0f}", seed + i, size,
                                   broker.bootstrap)
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
