"""Status files: how ``unbounded ui`` sees the queries of every process on the machine.

Each session with the UI on writes one JSON file per query run into the run directory:
``$UNBOUNDED_UI_DIR`` when set, else ``$XDG_RUNTIME_DIR/unbounded-ui``, else
``<tempdir>/unbounded-ui-<uid>``. The file is ``<pid>-<runId>.json`` and holds the
query document of ``ui_model`` (version 1). A writer thread rewrites a run's file after
its changes, at most every ``interval`` seconds, atomically (temporary file, then
rename), so a batch never waits on the disk and a reader never sees half a file.
When the session stops its files are removed; a process that dies leaves its files,
which readers show as ``EXITED`` and writers delete once a day old. A writer looks for
such files ``clean_delay`` seconds after it starts (30 s), not at once: the folder can
hold thousands of them and a session's start-up is measured (issue 15).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unbounded.observe.ui_model import DOCUMENT_VERSION

__all__ = ["StatusPublisher", "pid_alive", "read_published", "run_dir"]

log = logging.getLogger(__name__)
STALE_SECONDS = 24 * 3600
CLEAN_DELAY_SECONDS = 30.0
DocumentText = Callable[[str], str | None]  # a run's document as JSON text, None: gone


def run_dir() -> Path:
    """Where status files live (see the module docstring for the order of choices)."""
    explicit = os.environ.get("UNBOUNDED_UI_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "unbounded-ui"
    return Path(tempfile.gettempdir()) / f"unbounded-ui-{os.getuid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StatusPublisher:
    """Writes the files of one session's runs, off the batch thread."""

    def __init__(self, document: DocumentText, directory: Path | None = None,
                 interval: float = 0.25, clean_delay: float = CLEAN_DELAY_SECONDS) -> None:
        self.directory = directory or run_dir()
        self._document, self._interval = document, interval
        self._clean_at: float | None = time.monotonic() + clean_delay
        self._dirty: set[str] = set()
        self._written: set[str] = set()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="unbounded-ui-status",
                                        daemon=True)
        self._thread.start()

    def changed(self, run_id: str) -> None:
        """Mark a run's file out of date (cheap; called on the batch thread)."""
        with self._wake:
            self._dirty.add(run_id)
            self._wake.notify()

    def flush(self) -> None:
        """Write every out-of-date file now."""
        with self._wake:
            dirty, self._dirty = self._dirty, set()
        for run_id in sorted(dirty):
            self._write(run_id)

    def close(self) -> None:
        """Stop writing and remove this session's files: its queries are over."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=5)
        for run_id in list(self._written):
            self._path(run_id).unlink(missing_ok=True)

    def _loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._dirty or self._closed, self._until_clean())
                if self._closed:
                    return
            self._clean_when_due()
            self.flush()
            time.sleep(self._interval)

    def _until_clean(self) -> float | None:
        """Seconds until stale files are due to be cleaned; None: already done."""
        return None if self._clean_at is None else max(0.0, self._clean_at - time.monotonic())

    def _clean_when_due(self) -> None:
        if self._clean_at is not None and time.monotonic() >= self._clean_at:
            self._clean_at = None
            _remove_stale_once(self.directory)

    def _path(self, run_id: str) -> Path:
        return self.directory / f"{os.getpid()}-{run_id}.json"

    def _write(self, run_id: str) -> None:
        doc, path = self._document(run_id), self._path(run_id)
        try:
            if doc is None:
                path.unlink(missing_ok=True)
                self._written.discard(run_id)
                return
            _write_atomically(path, doc)
            self._written.add(run_id)
        except OSError as error:
            log.warning("Could not write the UI status file %s: %s", path, error)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


_CLEANED: set[Path] = set()
_CLEANED_LOCK = threading.Lock()


def _remove_stale_once(directory: Path) -> None:
    """Clean a directory once per process: stale files only appear at a day's pace."""
    with _CLEANED_LOCK:
        if directory in _CLEANED:
            return
        _CLEANED.add(directory)
    _remove_stale(directory)


def _remove_stale(directory: Path) -> None:
    """Files (and temporary files) of processes that died a day or more ago.

    Decided from the directory listing alone (age by mtime, writer by the ``<pid>-``
    of the name), never by parsing files: the folder is shared by every process on the
    machine and can hold thousands of them, and this runs beside a session's queries.
    """
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        pid = _writer_pid(entry.name)
        try:
            if pid is None or now - entry.stat().st_mtime <= STALE_SECONDS or pid_alive(pid):
                continue
            os.unlink(entry.path)
        except OSError:
            continue  # another process removed it first


def _writer_pid(name: str) -> int | None:
    """The pid in ``<pid>-<runId>.json`` or its temporary ``.<pid>-<runId>.json.tmp``."""
    if not name.endswith((".json", ".json.tmp")):
        return None
    head = name.lstrip(".").split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _documents(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed or being replaced while listed
        if isinstance(doc, dict) and doc.get("version") == DOCUMENT_VERSION:
            found.append((path, doc))
    return found


def read_published(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every query document in the run directory; a running query whose process is gone
    is shown as ``EXITED``. Files of unknown versions are skipped."""
    docs = []
    for _, doc in _documents(directory or run_dir()):
        pid = doc.get("pid")
        if doc.get("status") == "RUNNING" and isinstance(pid, int) and not pid_alive(pid):
            doc["status"] = "EXITED"
        docs.append(doc)
    return docs
