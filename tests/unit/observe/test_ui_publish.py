"""Status files: written off the batch thread, read by ``unbounded ui``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from unbounded.observe.ui_board import QueryBoard
from unbounded.observe.ui_publish import StatusPublisher, read_published, run_dir


def test_a_run_s_file_follows_its_batches_and_goes_when_the_session_stops(tmp_path):
    board = QueryBoard()
    publisher = StatusPublisher(board.document_json, tmp_path, interval=0)
    board.on_change(publisher.changed)
    board.started("q", "r", "n", "2024-01-01T00:00:00.000Z")
    board.progressed({"runId": "r", "batchId": 0})
    board.progressed({"runId": "r", "batchId": 1})
    publisher.flush()
    path = tmp_path / f"{os.getpid()}-r.json"
    written = json.loads(path.read_text())
    assert [b["batchId"] for b in written["batches"]] == [0, 1]
    assert written["pid"] == os.getpid() and written["status"] == "RUNNING"
    assert read_published(tmp_path) == [written]
    publisher.close()
    assert list(tmp_path.iterdir()) == []


def test_a_running_query_of_a_dead_process_shows_as_exited_and_odd_files_are_skipped(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    doc = {"version": 1, "runId": "r", "status": "RUNNING", "pid": pid, "batches": []}
    (tmp_path / f"{pid}-r.json").write_text(json.dumps(doc))
    (tmp_path / "1-v9.json").write_text(json.dumps({**doc, "version": 9}))
    (tmp_path / "2-half.json").write_text('{"version": 1, "ru')
    assert read_published(tmp_path) == [{**doc, "status": "EXITED"}]


def test_the_run_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNBOUNDED_UI_DIR", str(tmp_path / "mine"))
    assert run_dir() == tmp_path / "mine"
    monkeypatch.delenv("UNBOUNDED_UI_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert run_dir() == tmp_path / "unbounded-ui"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "absent"))
    assert run_dir().name == f"unbounded-ui-{os.getuid()}"


def test_files_of_processes_dead_a_day_go_without_being_read_and_the_rest_stay(tmp_path):
    from unbounded.observe.ui_publish import STALE_SECONDS, _remove_stale

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid, old = int(dead.stdout), os.path.getmtime(tmp_path) - STALE_SECONDS - 60
    names = {f"{pid}-old.json": old, f".{pid}-old.json.tmp": old, f"{pid}-new.json": None,
             f"{os.getpid()}-mine.json": old, "notes.txt": old}
    for name, mtime in names.items():
        (tmp_path / name).write_text("not JSON: the name and age decide")
        if mtime is not None:
            os.utime(tmp_path / name, (mtime, mtime))
    _remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f"{pid}-new.json", f"{os.getpid()}-mine.json", "notes.txt"])


def _stale_file(folder):
    """A status file of a process that died more than a day ago."""
    from unbounded.observe.ui_publish import STALE_SECONDS

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    folder.mkdir()
    path, old = folder / f"{int(dead.stdout)}-old.json", time.time() - STALE_SECONDS - 60
    path.write_text("{}")
    os.utime(path, (old, old))
    return path


def test_a_publisher_cleans_stale_files_after_its_clean_delay_not_at_start(tmp_path):
    kept = _stale_file(tmp_path / "later")
    publisher = StatusPublisher(QueryBoard().document_json, kept.parent, clean_delay=3600)
    publisher.changed("r")  # wakes the writer: it writes, but the clean is not due yet
    publisher.close()
    assert kept.exists()
    removed = _stale_file(tmp_path / "due")
    publisher = StatusPublisher(QueryBoard().document_json, removed.parent, clean_delay=0)
    deadline = time.monotonic() + 30
    while removed.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    publisher.close()
    assert not removed.exists()
