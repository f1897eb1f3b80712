"""Kafka end to end against a real broker: query processes SIGKILLed and restarted, the
broker paused, offsets lost, secrets kept out of sight, and the reference pipeline.

The broker is tansu (or ``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``). tansu 0.6.0 hands aborted
records to ``read_committed`` consumers, so the exactly-once test does not trust a
consumer: it reads the raw log (:func:`read_log`) and keeps a transactional record only
when a COMMIT marker of its producer follows it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytest.importorskip("confluent_kafka")


from kafka_fixtures import PausableBroker
from unbounded.files.manifest import FileSinkManifest
from unbounded.sql import SparkSession, StreamingQuery
from unbounded.sql import functions as F
from unbounded.testing.broker import (
    create_topic,
    delete_topic,
    produce_records,
    unique_topic,
)
from unbounded.testing.faults import FAULT_POINTS
from unbounded.testing.kafka_log import read_log

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


def _run(cmd: list[str], env: dict[str, str],
         timeout: float = 90) -> subprocess.CompletedProcess[str]:
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
    is certain), then four times at a random moment after a batch commits, then run it
    to completion. The committed records of the output topic, judged from the raw log
    (see :func:`read_log`), hold each input's output exactly once, and the killed
    transactions' records are in the log but not counted."""
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


# ---------------------------------------------------------------- in-process queries


def _wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.05)


def _kafka_to_files(spark: SparkSession, bootstrap: str, topic: str, tmp_path: Path,
                    trigger: dict[str, Any], **options: str) -> StreamingQuery:
    reader = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
              .option("subscribe", topic).option("startingOffsets", "earliest"))
    for key, value in options.items():
        reader = reader.option(key, value)
    rows = reader.load().select("partition", "offset",
                                F.col("value").cast("string").alias("value"))
    return (rows.writeStream.format("parquet")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(**trigger).start(str(tmp_path / "output")))


def _assert_files_hold_once(tmp_path: Path, expected: list[str]) -> None:
    rows = _file_output(tmp_path / "output")
    assert sorted(v for _, _, v in rows) == sorted(expected)  # values are unique


def _in_values(start: int, n: int) -> list[str]:
    return [f"in-{i}" for i in range(start, start + n)]


# ---------------------------------------------------------------- (c) broker outage


def test_a_paused_broker_is_waited_for_in_status_and_past_the_poll_timeout_fails_clearly(
        kafka_broker_process: PausableBroker, spark: SparkSession, tmp_path: Path) -> None:
    broker, checkpoint = kafka_broker_process, tmp_path / "checkpoint"
    bootstrap, topic = broker.bootstrap, unique_topic("pause")
    create_topic(bootstrap, topic)
    produce_records(bootstrap, topic, _in_values(0, 20))
    every_200ms = {"processingTime": "200 milliseconds"}
    # The status shows the wait after one request timeout (5 s here), and every check
    # below must be done before the poll timeout fails the query: 60 s leaves a loaded
    # machine ample time for both.
    query = _kafka_to_files(spark, bootstrap, topic, tmp_path, every_200ms,
                            **{"kafkaConsumer.pollTimeoutMs": "60000"})
    try:
        query.processAllAvailable(30)
        commits = _commits(checkpoint)
        broker.pause()
        try:
            _wait_until(lambda: "Waiting for Kafka brokers" in query.status["message"], 40,
                        "the wait to show in status")
            assert bootstrap in query.status["message"]
            assert "kafkaConsumer.pollTimeoutMs" in query.status["message"]
            time.sleep(0.5)  # more than a batch interval, still paused
            assert query.isActive
            assert _commits(checkpoint) == commits
            offsets = [n for n in os.listdir(checkpoint / "offsets") if n.isdigit()]
            assert len(offsets) == commits, "a half-done batch"
        finally:
            broker.resume()
        produce_records(bootstrap, topic, _in_values(20, 20))
        query.processAllAvailable(30)
        assert query.exception() is None
    finally:
        query.stop()
    _assert_files_hold_once(tmp_path, _in_values(0, 40))

    impatient = _kafka_to_files(spark, bootstrap, topic, tmp_path, every_200ms,
                                **{"kafkaConsumer.pollTimeoutMs": "1500"})
    impatient.processAllAvailable(30)
    broker.pause()
    try:
        with pytest.raises(Exception, match=r"kafkaConsumer\.pollTimeoutMs") as failure:
            impatient.awaitTermination(20)
    finally:
        broker.resume()
    assert bootstrap in str(failure.value)
    assert type(failure.value).__name__ == "StreamingQueryException"
    produce_records(bootstrap, topic, _in_values(40, 20))
    restarted = _kafka_to_files(spark, bootstrap, topic, tmp_path, {"availableNow": True})
    assert restarted.awaitTermination(60)
    _assert_files_hold_once(tmp_path, _in_values(0, 60))


# ---------------------------------------------------------------- (d) lost offsets


@pytest.mark.parametrize("fail_on_data_loss", [True, False])
def test_a_deleted_and_recreated_topic_fails_or_continues_as_fail_on_data_loss_says(
        kafka_bootstrap: str, spark: SparkSession, tmp_path: Path, fail_on_data_loss: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    topic = unique_topic("lost")
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, _in_values(0, 10))
    option = {"failOnDataLoss": str(fail_on_data_loss).lower()}
    first = _kafka_to_files(spark, kafka_bootstrap, topic, tmp_path, {"availableNow": True},
                            **option)
    assert first.awaitTermination(60)
    delete_topic(kafka_bootstrap, topic)
    create_topic(kafka_bootstrap, topic)
    produce_records(kafka_bootstrap, topic, ["new-0", "new-1", "new-2"])
    again = _kafka_to_files(spark, kafka_bootstrap, topic, tmp_path, {"availableNow": True},
                            **option)
    if fail_on_data_loss:
        with pytest.raises(Exception, match=rf"{topic}-0.* from 10 to 3.*failOnDataLoss"):
            again.awaitTermination(60)
        _assert_files_hold_once(tmp_path, _in_values(0, 10))
        return
    with caplog.at_level(logging.WARNING):
        assert again.awaitTermination(60)
    _assert_files_hold_once(tmp_path, [*_in_values(0, 10), "new-0", "new-1", "new-2"])
    assert f"{topic}-0" in caplog.text
    assert "failOnDataLoss is false" in caplog.text


# ---------------------------------------------------------------- (e) secrets


class _ConfigSpy:
    """Wraps a confluent-kafka client class and keeps every config it is built with."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.configs: list[dict[str, Any]] = []

    def __call__(self, config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.configs.append(dict(config))
        return self.cls(config, *args, **kwargs)


def test_sasl_and_tls_secrets_reach_the_client_but_no_log_progress_or_plan(
        kafka_bootstrap: str, spark: SparkSession, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from unbounded.sinks import kafka as sink_module
    from unbounded.sources import kafka as source_module

    spies = {name: _ConfigSpy(getattr(module, name)) for module, name in
             [(source_module, "Consumer"), (source_module, "AdminClient"),
              (sink_module, "Producer")]}
    monkeypatch.setattr(source_module, "Consumer", spies["Consumer"])
    monkeypatch.setattr(source_module, "AdminClient", spies["AdminClient"])
    monkeypatch.setattr(sink_module, "Producer", spies["Producer"])
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="alice" password="jaas-s3cret-e2e";')
    secrets = {"kafka.security.protocol": "PLAINTEXT", "kafka.sasl.mechanism": "PLAIN",
               "kafka.sasl.jaas.config": jaas, "kafka.ssl.key.password": "key-s3cret-e2e"}
    source, sink = unique_topic("sec-in"), unique_topic("sec-out")
    create_topic(kafka_bootstrap, source)
    create_topic(kafka_bootstrap, sink)
    produce_records(kafka_bootstrap, source, _in_values(0, 5))
    reader = (spark.readStream.format("kafka").option("subscribe", source)
              .option("startingOffsets", "earliest").options(
                  **{"kafka.bootstrap.servers": kafka_bootstrap, **secrets}))
    frame = reader.load().select("value")
    writer = (frame.writeStream.format("kafka").option("topic", sink)
              .options(**{"kafka.bootstrap.servers": kafka_bootstrap, **secrets})
              .option("checkpointLocation", str(tmp_path / "checkpoint"))
              .trigger(availableNow=True))
    shown = io.StringIO()
    with caplog.at_level(logging.DEBUG), redirect_stdout(shown):
        query = writer.start()
        assert query.awaitTermination(60)
        frame.explain(True)
        query.explain(True)
    for name in ("Consumer", "AdminClient", "Producer"):
        assert any(c.get("sasl.password") == "jaas-s3cret-e2e"
                   and c.get("ssl.key.password") == "key-s3cret-e2e"
                   and c.get("sasl.username") == "alice"
                   for c in spies[name].configs), f"the secrets never reached the {name}"
    progress = query.lastProgress
    assert progress is not None and progress["numInputRows"] == 5
    texts = {"logs": caplog.text, "explain": shown.getvalue(), "status": json.dumps(query.status),
             "progress": json.dumps([p.json for p in query.recentProgress])}
    for where, text in texts.items():
        assert "s3cret" not in text, f"a secret appears in the {where}"
    assert "redacted" in progress.json


# ---------------------------------------------------------------- (f) reference pipeline


def test_the_kafka_to_console_reference_pipeline_runs_with_unbounded_imports(
        kafka_bootstrap: str, job_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "kafka_to_console.py"
    script.write_text(EXAMPLE.read_text().replace("pyspark", "unbounded"))
    topic = unique_topic("console")
    create_topic(kafka_bootstrap, topic)
    env = {**job_env, "KAFKA_BOOTSTRAP": kafka_bootstrap, "KAFKA_TOPIC": topic,
           "CHECKPOINT_DIR": str(tmp_path / "checkpoint"), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "console.log"
    value = b"hi-c"  # short enough not to be cut at 20 characters
    shown = "[" + " ".join(f"{b:02X}" for b in value) + "]"
    with _process([sys.executable, str(script)], env, log) as proc:
        deadline = time.monotonic() + 45
        while shown not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            produce_records(kafka_bootstrap, topic, [value])  # the query starts at latest
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    out = log.read_text()
    assert "Batch: " in out
    header = next(line for line in out.splitlines() if "|value|" in line.replace(" ", ""))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "key", "value", "topic", "partition", "offset", "timestamp", "timestampType"]
    assert "|console-" in out.replace(" ", "")  # the topic, cut to 20 characters
