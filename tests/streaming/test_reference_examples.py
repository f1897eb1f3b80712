"""The reference pipelines of ../shared/examples, run as written with only the import
changed from pyspark to unbounded."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path

import pytest

from unbounded.testing.broker import create_topic, produce_records, unique_topic

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "examples"


def _port(tmp_path: Path, name: str) -> Path:
    source = EXAMPLES / name
    if not source.exists():
        pytest.skip(f"reference example {source} is not present")
    ported = tmp_path / name
    ported.write_text(source.read_text().replace("pyspark", "unbounded"))
    return ported


class _Output:
    """Collects a child's output lines on a thread so the test can wait for a pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, "".join(self.lines)):
                return True
            time.sleep(0.05)
        return False


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            return proc.wait(30)
    return proc.returncode


def test_socket_windowed_counts_runs_as_written(tmp_path, python_env):
    script = _port(tmp_path, "socket_windowed_counts.py")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]
    env = {**python_env, "SOCKET_HOST": "127.0.0.1", "SOCKET_PORT": str(port),
           "CHECKPOINT_DIR": str(tmp_path / "cp")}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"apple\nbanana\napple\n")
            out = _Output(proc)
            assert out.wait_for(r"\|\s*apple\|\s*2\|", 60), "".join(out.lines)
            assert out.wait_for(r"\|\s*banana\|\s*1\|", 5), "".join(out.lines)
            assert "Batch: 0" in "".join(out.lines)
            assert "|window" in "".join(out.lines).replace(" ", "")
    finally:
        code = _stop(proc)
        server.close()
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0


def test_append_without_watermark_example_is_refused_with_sparks_reason(
        tmp_path, python_env, kafka_bootstrap):
    script = _port(tmp_path, "kafka_minute_counts_append_no_watermark.py")
    topic = unique_topic("nowm")
    create_topic(kafka_bootstrap, topic)
    env = {**python_env, "KAFKA_BOOTSTRAP": kafka_bootstrap, "KAFKA_TOPIC": topic,
           "CHECKPOINT_DIR": str(tmp_path / "cp"), "OUTPUT_DIR": str(tmp_path / "out")}
    done = subprocess.run([sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert ("Append output mode not supported when there are streaming aggregations on "
            "streaming DataFrames/DataSets without watermark") in done.stderr
    assert "withWatermark" in done.stderr


def test_minute_counts_with_watermark_write_closed_windows_to_parquet(
        tmp_path, python_env, kafka_bootstrap, spark):
    script = _port(tmp_path, "kafka_minute_counts_to_parquet.py")
    topic = unique_topic("counts")
    create_topic(kafka_bootstrap, topic)
    t0 = (int(time.time()) // 60 - 10) * 60 * 1000  # a whole minute, ten minutes ago
    for offset_s, n in [(5, 2), (20, 1), (65, 1), (140, 1)]:
        produce_records(kafka_bootstrap, topic, [f"m{offset_s}-{i}" for i in range(n)],
                        timestamp_ms=t0 + offset_s * 1000)
    out_dir = tmp_path / "out"
    env = {**python_env, "KAFKA_BOOTSTRAP": kafka_bootstrap, "KAFKA_TOPIC": topic,
           "CHECKPOINT_DIR": str(tmp_path / "cp"), "OUTPUT_DIR": str(out_dir),
           "TRIGGER_INTERVAL": "1 second"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        rows: list = []
        while time.monotonic() < deadline and len(rows) < 2:
            time.sleep(0.5)
            if list(out_dir.glob("*.parquet")):
                rows = spark.read.parquet(str(out_dir)).collect()
    finally:
        _stop(proc)
    counts = sorted((r["window"]["start"].replace(tzinfo=UTC).timestamp() * 1000 - t0,
                     r["count"]) for r in rows)
    assert counts == [(0, 3), (60_000, 1)]
