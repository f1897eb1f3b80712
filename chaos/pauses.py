"""A run paused (SIGSTOP) mid-batch and resumed after a successor ran far ahead, past log
retention: with the lock file in place the successor is refused; with it removed (by
hand, or a file system whose locks are not shared) the successor runs and the resumed run
must write nothing, fenced by its older epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from chaos.report import Row
from chaos.scenarios import Size, SpecFactory, check, file_input
from chaos.supervisor import JobSpec, commit_count, run_to_end

__all__ = ["paused_run"]

_RETAIN = {"CHAOS_RETAIN": "2"}


def _tree(*folders: str) -> dict[str, tuple[int, int]]:
    """Every file under ``folders`` but the lock: path -> (size, mtime in ns)."""
    found = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                if name != ".lock":
                    st = os.stat(os.path.join(root, name))
                    found[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
    return found


def _pause_mid_run(spec: JobSpec) -> subprocess.Popen[bytes]:
    env = spec.environ({**_RETAIN, "UNBOUNDED_TEST_BATCH_DELAY": "0.5"})
    proc = subprocess.Popen(spec.command(), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while commit_count(spec.checkpoint) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.25)  # inside the next batch's sleep: its offsets are logged
    proc.send_signal(signal.SIGSTOP)
    return proc


def _resume(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGCONT)
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return proc.returncode, err.decode(errors="replace")


def _one(row: Row, spec: JobSpec, with_lock: bool) -> None:
    paused = _pause_mid_run(spec)
    if not with_lock:
        os.unlink(os.path.join(spec.checkpoint, ".lock"))
    successor = run_to_end(spec, _RETAIN)
    before = _tree(spec.checkpoint, spec.output)
    code, err = _resume(paused)
    row.faults += 1
    if with_lock:
        refused = successor.returncode != 0 and "Another run" in successor.stderr
        row.detected += refused and code == 0
        if not (refused and code == 0):
            row.notes.append(f"{spec.workdir}: successor exit {successor.returncode}, "
                             f"resumed run exit {code}: {err[-400:]}")
        return
    fenced = code != 0 and "Epoch conflict" in err
    row.detected += fenced
    if _tree(spec.checkpoint, spec.output) != before:
        row.silent += 1
        row.notes.append(f"{spec.workdir}: the resumed run changed files (exit {code})")
    if not fenced:
        row.notes.append(f"{spec.workdir}: resumed run exit {code}: {err[-300:]}")


def paused_run(sink: str, query: str, seed: int, *, root: str, size: Size,
               make: SpecFactory | None = None) -> Row:
    """Pause with and without the lock file, for each repetition."""
    row, make = Row("paused run", sink, query), make or file_input(root)
    for i in range(size.repeats):
        for with_lock in (True, False):
            spec, work = make(f"pause-{i}-{int(with_lock)}", sink, query, seed + i, size)
            _one(row, spec, with_lock)
            done = run_to_end(spec)
            check(row, spec, work, done.returncode)
    return row
