"""Kafka end to end against a real broker: query processes SIGKILLed and restarted, the
broker paused, offsets lost, secrets kept out of sight, and the reference pipeline.

The broker is tansu (or ``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``). tansu 0.6.0 hands aborted
records to ``read_committed`` consumers, so the exactly-once test does not trust a
consumer: it reads the raw log (:func:`read_log`) and keeps a transactional record only
when a COMMIT marker of its producer follows it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka.admin import AdminClient

from kafka_broker import create_topic, produce_records, unique_topic
from unbounded.faults import FAULT_POINTS
from unbounded.sinks.file_manifest import FileSinkManifest

pytestmark = pytest.mark.timeout(150)

TESTS = Path(__file__).resolve().parents[1]
JOBS = str(TESTS / "streaming" / "kafka_jobs.py")
EXAMPLE = Path("/work/shared/examples/kafka_to_console.py")


@pytest.fixture
def job_env() -> dict[str, str]:
    """Environment of a job process: this checkout's ``src`` and ``tests`` importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNBOUNDED_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)])
    return env


def _job(name: str, bootstrap: str, topic: str, output: str, checkpoint: str,
         max_offsets: int) -> list[str]:
    return [sys.executable, JOBS, name, "--bootstrap", bootstrap, "--topic", topic,
            "--output", output, "--checkpoint", checkpoint, "--max-offsets", str(max_offsets)]


def _run(cmd: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True,
                          check=False)


@contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A started process, SIGKILLed by PID on exit if it is still running."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _produce_inputs(bootstrap: str, topic: str, partitions: int, per_partition: int) -> set[str]:
    create_topic(bootstrap, topic, partitions=partitions)
    values: set[str] = set()
    for p in range(partitions):
        batch = [f"in-{p * per_partition + i}" for i in range(per_partition)]
        produce_records(bootstrap, topic, batch, partition=p)
        values.update(batch)
    return values


def _checkpoint_has(checkpoint: Path, log: str, batch: int) -> bool:
    return (checkpoint / log / str(batch)).exists()


# ---------------------------------------------------------------- (a) source replay


def _file_output(folder: Path) -> list[tuple[int, int, str]]:
    files = FileSinkManifest(str(folder)).all_files()
    rows: list[tuple[int, int, str]] = []
    for f in files:
        t = pq.read_table(f.removeprefix("file://"))
        rows.extend(zip(t.column("partition").to_pylist(), t.column("offset").to_pylist(),
                        t.column("value").to_pylist(), strict=True))
    return rows


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kafka_to_files_killed_at_each_batch_step_restarts_to_each_record_once(
        kafka_bootstrap: str, job_env: dict[str, str], tmp_path: Path, point: str) -> None:
    topic = unique_topic("e2e-files")
    expected = _produce_inputs(kafka_bootstrap, topic, partitions=2, per_partition=150)
    checkpoint, output = tmp_path / "checkpoint", tmp_path / "output"
    cmd = _job("to-files", kafka_bootstrap, topic, str(output), str(checkpoint), 100)
    crashed = _run(cmd, {**job_env, "UNBOUNDED_FAULT": f"{point}@1"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert _checkpoint_has(checkpoint, "offsets", 1) == (point != "before-offset-write")
    assert _checkpoint_has(checkpoint, "commits", 1) == (point == "after-commit-write")
    finished = _run(cmd, job_env)
    assert finished.returncode == 0, finished.stderr
    rows = _file_output(output)
    assert len(rows) == len(expected) == 300
    assert {v for _, _, v in rows} == expected
    assert len({(p, o) for p, o, _ in rows}) == 300
    assert sorted(o for p, o, _ in rows if p == 0) == list(range(150))


# ---------------------------------------------------------------- (b) Kafka -> Kafka


@dataclass
class LogContents:
    """A partition log read raw: values of committed records, and the rest."""

    committed: list[bytes] = field(default_factory=list)
    aborted: list[bytes] = field(default_factory=list)
    open: list[bytes] = field(default_factory=list)


def read_log(bootstrap: str, topic: str, partitions: int) -> LogContents:
    """Every record of ``topic`` sorted by the transaction markers that follow it.

    A consumer cannot be trusted to tell committed from aborted records here (tansu
    0.6.0 sends aborted records to ``read_committed`` consumers with an empty
    aborted-transactions list), so this asks the leader for the raw record batches
    (Fetch v4, ``read_uncommitted``) and applies the rule of the Kafka protocol itself:
    a transactional record is committed iff the next control batch of its producer id
    is a COMMIT marker; an ABORT marker discards it; with no marker yet it is open (not
    visible to ``read_committed`` readers). Non-transactional records count as committed.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topic, timeout=10)
    out = LogContents()
    for p in range(partitions):
        leader = meta.brokers[meta.topics[topic].partitions[p].leader]
        _classify(_fetch_all(leader.host, leader.port, topic, p), out)
    return out


Batch = tuple[int, int, int, list[bytes], int | None]  # attrs, pid, base, values, marker


def _classify(batches: list[Batch], out: LogContents) -> None:
    pending: dict[int, list[bytes]] = {}
    for attrs, pid, _, values, marker in batches:
        if attrs & 0x20:  # control batch: 1 = COMMIT, 0 = ABORT
            target = out.committed if marker == 1 else out.aborted
            target.extend(pending.pop(pid, []))
        elif attrs & 0x10:  # transactional data
            pending.setdefault(pid, []).extend(values)
        else:
            out.committed.extend(values)
    for values in pending.values():
        out.open.extend(values)


def _fetch_all(host: str, port: int, topic: str, partition: int) -> list[Batch]:
    batches: list[Batch] = []
    offset = 0
    with socket.create_connection((host, port), timeout=10) as conn:
        for _ in range(10_000):
            records, high = _fetch(conn, topic, partition, offset)
            parsed = _parse_batches(records)
            for batch, next_offset in parsed:
                batches.append(batch)
                offset = max(offset, next_offset)
            if offset >= high:
                return batches
            assert parsed, f"no progress fetching {topic}-{partition} at {offset} < {high}"
    raise AssertionError("log too long")


def _fetch(conn: socket.socket, topic: str, partition: int, offset: int) -> tuple[bytes, int]:
    name = topic.encode()
    body = struct.pack(">hhih", 1, 4, 7, 4) + b"test"  # Fetch v4, correlation 7
    body += struct.pack(">iiiib", -1, 100, 1, 8 << 20, 0)  # read_uncommitted
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, partition, offset, 8 << 20)
    conn.sendall(struct.pack(">i", len(body)) + body)
    data = _recv(conn, struct.unpack(">i", _recv(conn, 4))[0])
    pos = 4 + 4 + 4  # correlation id, throttle time, topic count
    pos += 2 + struct.unpack_from(">h", data, pos)[0] + 4  # topic name, partition count
    _, error, high, _ = struct.unpack_from(">ihqq", data, pos)
    assert error == 0, f"Fetch of {topic}-{partition} failed with error code {error}"
    pos += 4 + 2 + 8 + 8
    aborted = struct.unpack_from(">i", data, pos)[0]
    pos += 4 + max(aborted, 0) * 16
    size = struct.unpack_from(">i", data, pos)[0]
    return data[pos + 4:pos + 4 + max(size, 0)], high


def _recv(conn: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(n - len(chunks))
        assert chunk, "broker closed the connection"
        chunks += chunk
    return bytes(chunks)


def _parse_batches(data: bytes) -> list[tuple[Batch, int]]:
    """Record batches (magic 2, uncompressed) in ``data``; a trailing partial one is cut."""
    out: list[tuple[Batch, int]] = []
    pos = 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if pos + 12 + length > len(data):
            break
        _, magic, _, attrs, last_delta = struct.unpack_from(">ibIhi", data, pos + 12)
        assert magic == 2 and attrs & 0x07 == 0, "expected uncompressed v2 record batches"
        pid, _, _, count = struct.unpack_from(">qhii", data, pos + 12 + 4 + 1 + 4 + 2 + 4 + 16)
        records = _parse_records(data, pos + 61, count)
        marker = None
        if attrs & 0x20:
            marker = struct.unpack(">hh", records[0][0])[1]
        values = [v for _, v in records]
        out.append(((attrs, pid, base, values, marker), base + last_delta + 1))
        pos += 12 + length
    return out


def _parse_records(data: bytes, pos: int, count: int) -> list[tuple[bytes, bytes]]:
    records: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        _, pos = _varint(data, pos)  # record length
        pos += 1  # attributes
        _, pos = _varint(data, pos)  # timestamp delta
        _, pos = _varint(data, pos)  # offset delta
        key_len, pos = _varint(data, pos)
        key = data[pos:pos + max(key_len, 0)]
        pos += max(key_len, 0)
        value_len, pos = _varint(data, pos)
        value = data[pos:pos + max(value_len, 0)]
        pos += max(value_len, 0)
        headers, pos = _varint(data, pos)
        for _ in range(headers):
            n, pos = _varint(data, pos)
            pos += n
            n, pos = _varint(data, pos)
            pos += max(n, 0)
        records.append((key, value))
    return records


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _commits(checkpoint: Path) -> int:
    folder = checkpoint / "commits"
    return len([n for n in os.listdir(folder) if n.isdigit()]) if folder.is_dir() else 0


def _wait_for_new_commit(checkpoint: Path, proc: subprocess.Popen[bytes]) -> None:
    before, deadline = _commits(checkpoint), time.monotonic() + 30
    while _commits(checkpoint) == before and proc.poll() is None:
        assert time.monotonic() < deadline, "no batch committed within 30s"
        time.sleep(0.02)


def test_kafka_to_kafka_under_repeated_sigkill_commits_each_output_once(
        kafka_bootstrap: str, job_env: dict[str, str], tmp_path: Path) -> None:
    """Kill the query once inside a transaction (so an unfinished transaction with data
    is certain) and then four times at a random moment after a batch commits; run it to completion; then the
    committed records of the output topic (judged from the raw log, see
    :func:`read_log`) hold each input's output exactly once, and the killed
    transactions' records exist in the log but are not counted."""
    source, sink = unique_topic("e2e-in"), unique_topic("e2e-out")
    inputs = _produce_inputs(kafka_bootstrap, source, partitions=2, per_partition=2500)
    create_topic(kafka_bootstrap, sink, partitions=2)
    checkpoint = tmp_path / "checkpoint"
    cmd = _job("to-kafka", kafka_bootstrap, source, sink, str(checkpoint), 100)
    slow = {**job_env, "UNBOUNDED_TEST_BATCH_DELAY": "0.1"}
    crashed = _run(cmd, {**slow, "UNBOUNDED_FAULT": "mid-sink-write@1"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    rng = random.Random(4)
    for _ in range(4):
        with _process(cmd, slow, tmp_path / "job.log") as proc:
            _wait_for_new_commit(checkpoint, proc)
            time.sleep(rng.uniform(0.0, 0.3))
            assert proc.poll() is None, "the job finished before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
    finished = _run(cmd, job_env)
    assert finished.returncode == 0, finished.stderr
    log = read_log(kafka_bootstrap, sink, partitions=2)
    committed = Counter(v.decode() for v in log.committed)
    assert committed == Counter("out-" + v.removeprefix("in-") for v in inputs)
    assert log.aborted or log.open, "the kill inside a transaction left no trace to exclude"
