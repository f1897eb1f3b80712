"""Start-up cross-checks (issue 10, faults 3 and 5): before any batch runs, the offset log,
the source logs, the sink's manifest and the state must agree. A missing link is repaired
from the intact logs or refused naming the file, never guessed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import polars as pl
import pytest

from unbounded.checkpoint.checksum import MARKER_NAME, sidecar_path
from unbounded.files.manifest import FileSinkManifest

HERE = os.path.dirname(__file__)
JOB = os.path.join(HERE, "fencing_job.py")
STATEFUL_JOB = os.path.join(HERE, "stateful_job.py")
FILES, PER_FILE = 8, 30  # batches 0..7; retention keeps offsets/commits 6 and 7


def _write_input(folder: str, f: int) -> None:
    rows = [{"id": f * PER_FILE + i, "kind": "noise" if i % 10 == 9 else "click"}
            for i in range(PER_FILE)]
    with open(os.path.join(folder, f"part-{f:03d}.json"), "w") as out:
        out.write("\n".join(json.dumps(r) for r in rows) + "\n")


def _expected(files: range) -> Counter[int]:
    return Counter(f * PER_FILE + i for f in files for i in range(PER_FILE) if i % 10 != 9)


@pytest.fixture
def dirs(tmp_path):
    inputs = tmp_path / "input"
    inputs.mkdir()
    for f in range(FILES):
        _write_input(str(inputs), f)
    return {n: str(tmp_path / n) for n in ("input", "output", "checkpoint")}


def _run(dirs, python_env, *options, fault=None):
    env = {**python_env, **({"UNBOUNDED_FAULT": fault} if fault else {})}
    return subprocess.run([sys.executable, JOB, dirs["input"], dirs["output"],
                           dirs["checkpoint"], *options],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _clean_run(dirs, python_env):
    done = _run(dirs, python_env)
    assert done.returncode == 0, done.stderr
    assert _ids(dirs) == _expected(range(FILES))


def _ids(dirs) -> Counter[int]:
    files = FileSinkManifest(dirs["output"]).existing_files()
    return Counter(pl.read_parquet(files)["id"].to_list()) if files else Counter()


def _remove(path: str) -> None:
    os.unlink(path)
    if os.path.exists(sidecar_path(path)):
        os.unlink(sidecar_path(path))


def _rewrite_unchecked(path: str, edit) -> None:
    """Edit a log file in a folder made to look as Spark wrote it (no checksum sidecar, no
    ``.crc32c-from`` marker: an entry whose sidecar alone was deleted is refused)."""
    with open(path) as f:
        text = f.read()
    folder = os.path.dirname(path)
    for name in os.listdir(folder):
        if name == MARKER_NAME or (name.startswith(".") and name.endswith(".crc32c")):
            os.unlink(os.path.join(folder, name))
    with open(path, "w") as f:
        f.write(edit(text))


def _refused(dirs, python_env, *names):
    """A restart with new input fails before any batch, naming ``names``; nothing written."""
    _write_input(dirs["input"], FILES)
    before = _ids(dirs)
    failed = _run(dirs, python_env)
    assert failed.returncode != 0
    for name in names:
        assert name in failed.stderr, failed.stderr
    assert "CheckpointCorruptError" in failed.stderr or "damaged" in failed.stderr
    assert _ids(dirs) == before
    return failed.stderr


# ---- fault 3: damaged logs --------------------------------------------------------------

def test_a_deleted_source_log_entry_is_refused_not_read_again(dirs, python_env):
    _clean_run(dirs, python_env)
    entry = os.path.join(dirs["checkpoint"], "sources", "0", "7")
    _remove(entry)
    _refused(dirs, python_env, entry, os.path.join(dirs["checkpoint"], "offsets", "7"))


def test_a_changed_path_in_a_source_log_entry_is_refused_at_start(dirs, python_env):
    _clean_run(dirs, python_env)
    entry = os.path.join(dirs["checkpoint"], "sources", "0", "7")
    with open(entry) as f:
        text = f.read()
    with open(entry, "w") as f:
        f.write(text.replace("part-007", "part-070"))
    _refused(dirs, python_env, entry)


def test_a_log_offset_that_goes_back_is_refused(dirs, python_env):
    _clean_run(dirs, python_env)
    entry = os.path.join(dirs["checkpoint"], "offsets", "7")
    _rewrite_unchecked(entry, lambda t: t.replace('{"logOffset":7}', '{"logOffset":5}'))
    _refused(dirs, python_env, entry, "never go back")


def test_a_changed_log_offset_in_an_older_retained_entry_is_refused(dirs, python_env):
    _clean_run(dirs, python_env)
    entry = os.path.join(dirs["checkpoint"], "offsets", "6")
    with open(entry) as f:
        text = f.read()
    with open(entry, "w") as f:
        f.write(text.replace('{"logOffset":6}', '{"logOffset":4}'))
    _refused(dirs, python_env, entry)


def test_a_lost_latest_sink_manifest_entry_is_repaired_by_rerunning_its_batch(dirs,
                                                                             python_env):
    _clean_run(dirs, python_env)
    _remove(os.path.join(dirs["output"], "_spark_metadata", "7"))
    assert _ids(dirs) == _expected(range(FILES - 1))
    _write_input(dirs["input"], FILES)
    repaired = _run(dirs, python_env)
    assert repaired.returncode == 0, repaired.stderr
    assert "re-running the batch" in repaired.stderr
    assert _ids(dirs) == _expected(range(FILES + 1))
    assert FileSinkManifest(dirs["output"]).latest_batch_id() == FILES


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip"])
def test_a_damaged_latest_sink_manifest_entry_is_refused_at_start(dirs, python_env, damage):
    _clean_run(dirs, python_env)
    entry = os.path.join(dirs["output"], "_spark_metadata", "7")
    with open(entry, "rb") as f:
        data = bytearray(f.read())
    data = {"truncate": data[: len(data) // 2], "empty": bytearray(),
            "flip": data[:-2] + bytes([data[-2] ^ 0x01]) + data[-1:]}[damage]
    with open(entry, "wb") as f:
        f.write(data)
    _write_input(dirs["input"], FILES)
    failed = _run(dirs, python_env)
    assert failed.returncode != 0
    assert entry in failed.stderr and "CheckpointCorruptError" in failed.stderr
    assert not os.path.exists(os.path.join(dirs["checkpoint"], "offsets", str(FILES)))
    assert not os.path.exists(os.path.join(dirs["output"], "_spark_metadata", str(FILES)))


def test_two_lost_sink_manifest_entries_are_refused_naming_the_first(dirs, python_env):
    _clean_run(dirs, python_env)
    for batch in (6, 7):
        _remove(os.path.join(dirs["output"], "_spark_metadata", str(batch)))
    _refused(dirs, python_env, os.path.join(dirs["output"], "_spark_metadata", "6"))


# ---- fault 5: an input file gone before its batch is re-run -----------------------------

def _crash_after_logging_batch_3(dirs, python_env):
    crashed = _run(dirs, python_env, fault="after-offset-write@3")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    os.unlink(os.path.join(dirs["input"], "part-003.json"))


def test_a_rerun_batch_whose_input_file_vanished_fails_naming_it(dirs, python_env):
    _crash_after_logging_batch_3(dirs, python_env)
    failed = _run(dirs, python_env)
    assert failed.returncode != 0
    assert "part-003.json" in failed.stderr
    assert "FILE_NOT_EXIST" in failed.stderr
    assert _ids(dirs) == _expected(range(3))


def test_ignore_missing_files_skips_the_vanished_input_of_a_rerun_batch(dirs, python_env):
    _crash_after_logging_batch_3(dirs, python_env)
    done = _run(dirs, python_env, "ignoreMissingFiles=true")
    assert done.returncode == 0, done.stderr
    assert _ids(dirs) == _expected(range(3)) + _expected(range(4, FILES))


# ---- state ------------------------------------------------------------------------------

def _events(folder: str) -> None:
    os.makedirs(folder)
    for f in range(3):
        rows = [{"id": f * 10 + i, "kind": "a" if i % 2 else "b", "amount": 1.0,
                 "ts": f"2026-01-01 00:0{f}:{i:02d}"} for i in range(10)]
        with open(os.path.join(folder, f"e{f}.json"), "w") as out:
            out.write("\n".join(json.dumps(r) for r in rows) + "\n")


def test_a_missing_state_version_is_refused_before_any_batch(tmp_path, python_env):
    inputs, out, cp = (str(tmp_path / n) for n in ("input", "output", "checkpoint"))
    _events(inputs)
    cmd = [sys.executable, STATEFUL_JOB, inputs, out, cp]
    done = subprocess.run(cmd, env=python_env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    commits = sorted(int(n) for n in os.listdir(os.path.join(cp, "commits")) if n.isdigit())
    latest = os.path.join(cp, "state", "0", "1", f"{commits[-1] + 1}.delta")
    os.unlink(latest)
    failed = subprocess.run(cmd, env=python_env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert failed.returncode != 0
    assert latest in failed.stderr


def _lists_files(entry: str) -> bool:
    with open(entry) as f:
        return len(f.read().strip().split("\n")) > 1


def _window_rows(out: str) -> list[tuple]:
    files = FileSinkManifest(out).existing_files()
    frame = pl.read_parquet(files).unnest("window") if files else pl.DataFrame()
    return sorted(frame.rows())


def test_a_lost_manifest_entry_of_a_windowed_query_is_rewritten_from_its_state(tmp_path,
                                                                              python_env):
    inputs, out, cp = (str(tmp_path / n) for n in ("input", "output", "checkpoint"))
    _events(inputs)
    cmd = [sys.executable, STATEFUL_JOB, inputs, out, cp]
    done = subprocess.run(cmd, env=python_env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    manifest = FileSinkManifest(out)
    last = manifest.latest_batch_id()
    emitted = [b for b in range(last + 1) if _lists_files(manifest.entry_path(b))]
    lost = emitted[-1]
    clean = _window_rows(out)
    for batch in range(lost, last + 1):  # the last batch that emitted rows, and after it
        _remove(manifest.entry_path(batch))
    for batch in range(lost + 1, last + 1):  # as if the job had stopped after that batch
        _remove(os.path.join(cp, "commits", str(batch)))
        _remove(os.path.join(cp, "offsets", str(batch)))
    assert _window_rows(out) != clean
    repaired = subprocess.run(cmd, env=python_env, capture_output=True, text=True,
                              timeout=120, check=False)
    assert repaired.returncode == 0, repaired.stderr
    assert "re-running the batch" in repaired.stderr
    assert _window_rows(out) == clean


def test_a_lost_manifest_entry_with_a_later_batch_started_is_refused(dirs, python_env):
    crashed = _run(dirs, python_env, fault="after-offset-write@5")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    _remove(os.path.join(dirs["output"], "_spark_metadata", "4"))
    _refused(dirs, python_env, os.path.join(dirs["output"], "_spark_metadata", "4"))
