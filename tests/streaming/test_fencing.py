"""Fencing by epoch (issue 10, fault 4): once a newer run of a query has started, a paused
older run writes nothing, whatever retention removed and even with the lock file gone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import polars as pl
import pyarrow as pa
import pytest

from kafka_fixtures import stopped
from unbounded.checkpoint import epoch as epoch_module
from unbounded.checkpoint.checksum import accept_unverified
from unbounded.checkpoint.epoch import EpochFence, fence_for, newest_epoch
from unbounded.errors import (
    CheckpointConflictError,
    CheckpointCorruptError,
    ConcurrentQueryError,
)
from unbounded.files.listing import DataFile
from unbounded.files.manifest import FileSinkManifest
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.files import FileSink
from unbounded.sources.files import FileSourceLog
from unbounded.state.base import StateSchema, StateStoreId
from unbounded.state.disk import DiskStateStoreProvider
from unbounded.state.memory import MemoryStateStoreProvider

JOB = os.path.join(os.path.dirname(__file__), "fencing_job.py")
FILES, PER_FILE = 10, 40
SCHEMA = StateSchema(pa.schema([("k", pa.int64())]), pa.schema([("n", pa.int64())]))


@pytest.fixture
def fences():
    """Fences taken by a test, released from the per-process registry afterwards."""
    taken: list[EpochFence] = []
    yield taken
    for fence in taken:
        fence.release()


def _take(fences, checkpoint, run_id):
    fence = EpochFence.take(checkpoint, run_id)
    fences.append(fence)
    return fence


def test_each_run_takes_a_higher_epoch_and_removes_the_older_files(tmp_path, fences):
    cp = str(tmp_path)
    epochs = [_take(fences, cp, f"run-{i}").epoch for i in range(3)]
    assert epochs == [0, 1, 2]
    assert sorted(n for n in os.listdir(tmp_path / "epochs") if n.isdigit()) == ["2"]
    assert newest_epoch(cp) == 2
    assert fences[-1].record()["runId"] == "run-2"


def test_an_epoch_file_of_another_version_is_refused(tmp_path, fences):
    fence = _take(fences, str(tmp_path), "a")
    path = tmp_path / "epochs" / "0"
    os.unlink(path)
    path.write_text('v9\n{"epoch":0}')
    accept_unverified(str(path))  # a later release writes its checksum too
    with pytest.raises(CheckpointCorruptError, match=re.escape(f"{path} starts with 'v9'")):
        fence.record()


def test_only_the_newest_epoch_passes_the_check(tmp_path, fences):
    cp = str(tmp_path)
    first = _take(fences, cp, "a")
    first.check("offsets/0")
    second = _take(fences, cp, "b")
    second.check("offsets/1")
    with pytest.raises(CheckpointConflictError, match="Epoch conflict: this run holds epoch 0"
                       ) as caught:
        first.check("offsets/1")
    assert caught.value.error_class == "CHECKPOINT_EPOCH_FENCED"
    assert "without writing offsets/1" in str(caught.value)


def test_a_deleted_epochs_folder_fences_every_run_instead_of_none(tmp_path, fences):
    fence = _take(fences, str(tmp_path), "a")
    for name in os.listdir(tmp_path / "epochs"):
        os.unlink(tmp_path / "epochs" / name)
    with pytest.raises(CheckpointConflictError, match="Epoch conflict"):
        fence.check("commits/0")


def test_two_runs_taking_the_same_epoch_at_once_one_fails(tmp_path, fences, monkeypatch):
    _take(fences, str(tmp_path), "a")
    monkeypatch.setattr(epoch_module, "_epochs", lambda folder: [])  # raced: saw no epoch
    with pytest.raises(ConcurrentQueryError, match="took epoch 0"):
        _take(fences, str(tmp_path), "b")


def test_fence_for_finds_the_run_whose_checkpoint_holds_the_path(tmp_path, fences):
    fence = _take(fences, str(tmp_path / "cp"), "a")
    assert fence_for(str(tmp_path / "cp" / "state" / "0" / "1")) is fence
    assert fence_for(str(tmp_path / "cp")) is fence
    assert fence_for(str(tmp_path / "elsewhere")) is None
    fence.release()
    assert fence_for(str(tmp_path / "cp" / "state")) is None


@pytest.mark.parametrize("provider_class", [MemoryStateStoreProvider, DiskStateStoreProvider])
def test_a_state_commit_of_a_fenced_run_writes_no_version(tmp_path, fences, provider_class):
    cp = str(tmp_path)
    _take(fences, cp, "old")
    provider = provider_class(StateStoreId(os.path.join(cp, "state"), 0, 0), SCHEMA)
    store = provider.get_store(0)
    store.upsert(pa.table({"k": [1], "n": [1]}))
    assert store.commit() == 1
    store = provider.get_store(1)
    store.upsert(pa.table({"k": [2], "n": [2]}))
    _take(fences, cp, "new")
    with pytest.raises(CheckpointConflictError, match=re.escape("state/0/0/2.delta")):
        store.commit()
    assert sorted(os.listdir(tmp_path / "state" / "0" / "0")) == ["1.delta"]
    provider.close()


def _sink(cp: str, out: str) -> FileSink:
    return FileSink("parquet", SinkContext("q", None, {"path": out}, "append", cp))


def test_a_sink_commit_of_a_fenced_run_publishes_no_manifest_entry(tmp_path, fences):
    cp, out = str(tmp_path / "cp"), str(tmp_path / "out")
    _take(fences, cp, "old")
    sink = _sink(cp, out)
    table = pa.table({"id": [1, 2]})
    sink.add_batch(0, MicroBatch(0, table.schema, [table]))
    _take(fences, cp, "new")
    with pytest.raises(CheckpointConflictError, match="_spark_metadata/1"):
        sink.add_batch(1, MicroBatch(1, table.schema, [table]))
    manifest = FileSinkManifest(out)
    assert manifest.latest_batch_id() == 0
    assert len(manifest.all_files()) == 1


def test_a_source_log_entry_of_a_fenced_run_is_not_written(tmp_path, fences):
    cp = str(tmp_path)
    data = tmp_path / "a.json"
    data.write_text('{"id": 1}\n')
    _take(fences, cp, "old")
    log = FileSourceLog(os.path.join(cp, "sources", "0"))
    log.add(0, [DataFile(str(data), 1, 1)])
    _take(fences, cp, "new")
    with pytest.raises(CheckpointConflictError, match="sources/0/1"):
        log.add(1, [DataFile(str(data), 1, 1)])
    assert sorted(n for n in os.listdir(tmp_path / "sources" / "0") if n.isdigit()) == ["0"]


# ---- fault 4: a real process paused far behind ------------------------------------------

def _write_inputs(folder: str) -> None:
    os.makedirs(folder)
    for f in range(FILES):
        rows = [{"id": f * PER_FILE + i, "kind": "noise" if i % 10 == 9 else "click"}
                for i in range(PER_FILE)]
        with open(os.path.join(folder, f"part-{f:03d}.json"), "w") as out:
            out.write("\n".join(json.dumps(r) for r in rows) + "\n")


def _tree(*folders: str) -> dict[str, tuple[int, int]]:
    """Every file under ``folders``: path -> (size, mtime in ns)."""
    found = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                if name == ".lock":
                    continue
                stat = os.stat(os.path.join(root, name))
                found[os.path.join(root, name)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _wait_for(path: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, "the job ended before reaching the pause point"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _output_ids(out: str) -> Counter[int]:
    files = FileSinkManifest(out).existing_files()
    return Counter(pl.read_parquet(files)["id"].to_list()) if files else Counter()


def test_a_paused_run_resumed_after_a_newer_run_went_past_retention_writes_nothing(
        tmp_path, python_env):
    inputs, out, cp = (str(tmp_path / n) for n in ("input", "output", "checkpoint"))
    _write_inputs(inputs)
    cmd = [sys.executable, JOB, inputs, out, cp]
    paused = subprocess.Popen(cmd, env={**python_env, "UNBOUNDED_TEST_BATCH_DELAY": "2"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The sink has written batch 2 (the manifest entry's checksum sidecar, then the
        # entry): the job now sleeps before commits/2 for 2 s. Waiting for the sidecar
        # alone could pause the job between the two; resumed, it would then write its
        # own entry (a change this test forbids).
        _wait_for(os.path.join(out, "_spark_metadata", "2"), paused)
        paused.send_signal(signal.SIGSTOP)
        # kill(2) returns before every thread has stopped; the run must be frozen first.
        deadline = time.monotonic() + 30
        while not stopped(paused.pid):
            assert time.monotonic() < deadline, "the job did not stop within 30 s"
            time.sleep(0.01)
        os.unlink(os.path.join(cp, ".lock"))  # removed by hand: the lock cannot fence
        successor = subprocess.run(cmd, env=python_env, capture_output=True, text=True,
                                   timeout=120, check=False)
        assert successor.returncode == 0, successor.stderr
        assert sorted(int(n) for n in os.listdir(os.path.join(cp, "commits"))
                      if n.isdigit()) == [FILES - 2, FILES - 1], "retention purged the rest"
        before = _tree(cp, out)
        paused.send_signal(signal.SIGCONT)
        _, stderr = paused.communicate(timeout=60)
    finally:
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
            paused.kill()
            paused.wait(30)
    message = stderr.decode()
    assert paused.returncode != 0, message
    assert "Epoch conflict: this run holds epoch 0" in message
    assert "commits/2" in message
    assert _tree(cp, out) == before, "the fenced run changed the checkpoint or the output"
    expected = Counter(i for i in range(FILES * PER_FILE) if i % PER_FILE % 10 != 9)
    assert _output_ids(out) == expected
