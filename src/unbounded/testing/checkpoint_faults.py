"""A fault-injecting checkpoint file system, for the chaos suite.

Select it in a query process with::

    UNBOUNDED_CHECKPOINT_FILE_OPS=unbounded.testing.checkpoint_faults:FaultyFileOps
    UNBOUNDED_CHECKPOINT_FAULTS="enospc:write:3+:*/commits/*;delay=0.5:close:1:*"

Each fault is ``<kind>:<op>:<n>[+]:<path pattern>``: on the n-th operation ``op`` on a path
matching the ``fnmatch`` pattern (from then on with ``+``) the fault fires. Kinds:
``enospc``, ``eio``, ``erofs`` raise that OSError; ``delay=<seconds>`` sleeps first (a slow
close on a network file system); ``power`` cuts the power: every file write and directory
entry that no fsync made durable is undone, then the process is SIGKILLed. Operations:
``write`` (creating a temp file), ``fsync``, ``close``, ``rename`` (link or replace),
``dirsync`` (matched against ``<folder>/``). A temp file is matched under its final name.
Data files written by name (a file sink's) count from their ``fsync``: a power cut then
removes the file, and every folder made since, unless a folder fsync kept its name.
Each fired fault appends a line to ``$UNBOUNDED_CHECKPOINT_FAULTS_LOG`` when set.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from unbounded.checkpoint.atomic import FileOps, is_temp_name

__all__ = ["FAULTS_ENV", "FAULTS_LOG_ENV", "Fault", "FaultyFileOps", "parse_faults"]

FAULTS_ENV = "UNBOUNDED_CHECKPOINT_FAULTS"
FAULTS_LOG_ENV = "UNBOUNDED_CHECKPOINT_FAULTS_LOG"
_ERRORS = {"enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS}
_OPS = ("write", "fsync", "close", "rename", "dirsync")


@dataclass
class Fault:
    """One planned fault; ``seen`` counts the matching operations so far."""

    kind: str
    op: str
    nth: int
    sticky: bool
    pattern: str
    seen: int = 0

    def due(self, op: str, path: str) -> bool:
        """Count this operation if it matches; whether the fault fires on it."""
        if op != self.op or not fnmatch.fnmatchcase(path, self.pattern):
            return False
        self.seen += 1
        return self.seen == self.nth or (self.sticky and self.seen > self.nth)


def parse_faults(spec: str) -> list[Fault]:
    """``kind:op:n[+]:pattern`` items separated by ``;`` (see the module docstring)."""
    faults = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        kind, op, nth, pattern = [*item.split(":", 3), "*"][:4]
        if op not in _OPS or not (kind in _ERRORS or kind == "power"
                                  or kind.startswith("delay=")):
            raise ValueError(f"bad checkpoint fault {item!r}: see {__name__}")
        faults.append(Fault(kind, op, int(nth.rstrip("+")), nth.endswith("+"), pattern))
    return faults


def _final_name(path: str) -> str:
    """``folder/.name.<uuid>.tmp`` -> ``folder/name``: faults name the file being written."""
    folder, name = os.path.split(path)
    if is_temp_name(name):
        name = name[1:].rsplit(".", 2)[0]
    return os.path.join(folder, name)


@dataclass
class _Undo:
    """A directory change not yet made durable: what a power cut turns back."""

    path: str
    content: bytes | None  # what was there before (None: nothing)


@dataclass
class _Volatile:
    """What a power cut would lose: unsynced file data and directory entries."""

    files: set[str] = field(default_factory=set)
    entries: dict[str, list[_Undo]] = field(default_factory=dict)

    def note_entry(self, path: str, before: bytes | None) -> None:
        folder = os.path.dirname(path) or "."
        self.entries.setdefault(os.path.abspath(folder), []).append(_Undo(path, before))

    def lose_everything(self) -> None:
        # Copies: other threads (state partitions, sink writers) keep writing meanwhile.
        for undos in list(self.entries.values()):
            for undo in reversed(list(undos)):
                _restore(undo)
        for path in list(self.files):
            if os.path.exists(path):
                os.truncate(path, 0)


def _read_or_none(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _restore(undo: _Undo) -> None:
    if undo.content is None:
        if os.path.isdir(undo.path):
            shutil.rmtree(undo.path)  # a folder made since: it goes with all it holds
        elif os.path.exists(undo.path):
            os.unlink(undo.path)
        return
    if not os.path.isdir(os.path.dirname(undo.path)):
        return  # its folder was made since, and is gone again
    with open(undo.path, "wb") as f:
        f.write(undo.content)


class FaultyFileOps(FileOps):
    """FileOps that fire the faults of ``$UNBOUNDED_CHECKPOINT_FAULTS`` (or ``faults``)."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self.faults = parse_faults(os.environ.get(FAULTS_ENV, "")) if faults is None else faults
        self.fired: list[str] = []
        self._volatile = _Volatile()
        self._lock = threading.Lock()
        # Data files noted by ``wrote`` whose fsync is still to come.
        self._written: set[str] = set()

    def _check(self, op: str, path: str) -> None:
        with self._lock:
            due = [f for f in self.faults if f.due(op, path)]
        for fault in due:
            self._fire(fault, op, path)

    def _fire(self, fault: Fault, op: str, path: str) -> None:
        note = f"{fault.kind}:{op}:{fault.seen}:{path}"
        self.fired.append(note)
        log = os.environ.get(FAULTS_LOG_ENV)
        if log:
            with open(log, "a") as f:
                f.write(note + "\n")
        if fault.kind.startswith("delay="):
            time.sleep(float(fault.kind.removeprefix("delay=")))
        elif fault.kind == "power":
            self.lose_unsynced()
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            code = _ERRORS[fault.kind]
            raise OSError(code, os.strerror(code), path)

    def lose_unsynced(self) -> None:
        """What a power cut does to the disk: undo every directory change no folder fsync
        made durable, and empty every file written since its last fsync."""
        with self._lock:
            self._volatile.lose_everything()
            self._volatile = _Volatile()

    def open(self, path: str) -> BinaryIO:
        f = super().open(path)
        self._volatile.files.add(path)
        try:
            self._check("write", _final_name(path))
        except OSError:
            f.close()
            raise
        return f

    def fsync(self, f: BinaryIO, path: str) -> None:
        self._check("fsync", _final_name(path))
        super().fsync(f, path)
        self._volatile.files.discard(path)

    def close(self, f: BinaryIO, path: str) -> None:
        try:
            self._check("close", _final_name(path))
        finally:
            super().close(f, path)

    def link(self, src: str, dst: str) -> None:
        self._check("rename", dst)
        super().link(src, dst)
        self._volatile.note_entry(dst, None)

    def replace(self, src: str, dst: str) -> None:
        self._check("rename", dst)
        before, moved = _read_or_none(dst), _read_or_none(src)
        super().replace(src, dst)
        self._volatile.note_entry(src, moved)
        self._volatile.note_entry(dst, before)

    def unlink(self, path: str) -> None:
        before = _read_or_none(path)
        super().unlink(path)
        self._volatile.note_entry(path, before)

    def make_dir(self, path: str) -> None:
        super().make_dir(path)
        self._volatile.note_entry(path, None)

    def wrote(self, path: str) -> None:
        """A data file written by name: its data is volatile until its fsync, its name
        until a folder fsync from now on (one may come before the file's fsync, which
        can run on another thread)."""
        self._written.add(path)
        self._volatile.files.add(path)
        self._volatile.note_entry(path, None)

    def fsync_file(self, path: str) -> None:
        """A data file written by name: volatile (data and name) until this fsync, when
        no ``wrote`` told when it was written."""
        if path not in self._written:
            self._volatile.files.add(path)
            self._volatile.note_entry(path, None)
        self._check("fsync", path)
        super().fsync_file(path)
        self._volatile.files.discard(path)
        self._written.discard(path)

    def fsync_dir(self, path: str) -> None:
        self._check("dirsync", os.path.join(path, ""))
        super().fsync_dir(path)
        self._volatile.entries.pop(os.path.abspath(path), None)

    def keeps_order_across(self, folder: str, other: str) -> bool:
        """No: this model's folder fsync keeps its own folder's names alone, so every
        write into one folder that a name in another depends on is fsynced first."""
        return False
