"""Chaos scenarios over the file sink and foreachBatch: crash points, random SIGKILLs,
file-system faults, power loss, damaged checkpoint files, stray temp files.

Each scenario runs the job in fresh folders under ``root``, finishes it with clean
restarts, and compares the committed output with the oracle as a multiset.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import polars as pl

from chaos.outputs import committed_rows
from chaos.report import Row
from chaos.supervisor import JobSpec, run_to_end, supervise
from chaos.workload import Workload, compare, expected_rows, generate
from unbounded.testing.faults import FAULT_POINTS

__all__ = [
    "Size",
    "SpecFactory",
    "clock_jumps",
    "crash_points",
    "file_input",
    "fs_faults",
    "power_loss",
    "power_loss_data",
    "power_loss_delta",
    "random_kills",
    "stray_temps",
]

FAULTY_OPS = "unbounded.testing.checkpoint_faults:FaultyFileOps"


@dataclass(frozen=True)
class Size:
    """How much input each run gets, and how many repetitions a scenario makes."""

    files: int = 8
    per_file: int = 200
    repeats: int = 2


def prepare(root: str, name: str, sink: str, query: str, seed: int, *,
            size: Size) -> tuple[JobSpec, Workload]:
    """Fresh folders and input for one run."""
    workdir = os.path.join(root, name)
    shutil.rmtree(workdir, ignore_errors=True)
    work = generate(os.path.join(workdir, "input"), seed, size.files, size.per_file)
    return JobSpec(sink, query, workdir), work


SpecFactory = Callable[[str, str, str, int, Size], tuple[JobSpec, Workload]]
"""(run name, sink, query, seed, size) -> a fresh job and its input."""


def file_input(root: str) -> SpecFactory:
    """Jobs reading JSON files, in fresh folders under ``root``."""
    def make(name: str, sink: str, query: str, seed: int,
             size: Size) -> tuple[JobSpec, Workload]:
        return prepare(root, name, sink, query, seed, size=size)
    return make


def _committed(row: Row, spec: JobSpec) -> Counter[tuple[object, ...]]:
    """What the sink committed; output that cannot be read back (a listed data file
    missing, emptied or damaged) counts as nothing committed, and is noted."""
    try:
        return committed_rows(spec.sink, spec.query, spec.output, spec.bootstrap)
    except (OSError, pl.exceptions.PolarsError) as e:
        row.notes.append(f"{spec.workdir}: committed output unreadable: {e}"[:600])
        return Counter()


def check(row: Row, spec: JobSpec, work: Workload, returncode: int) -> None:
    """Add the run's lost and duplicated rows; a wrong output after exit 0 is silent."""
    lost, dup = compare(expected_rows(work, spec.query), _committed(row, spec))
    row.runs += 1
    row.lost, row.duplicated = row.lost + lost, row.duplicated + dup
    if returncode == 0 and (lost or dup):
        row.silent += 1
    if returncode != 0:
        row.notes.append(f"{spec.workdir}: final run exit {returncode}")


def finish(row: Row, spec: JobSpec, work: Workload) -> None:
    """Restart without faults until done, then check the output."""
    done = run_to_end(spec)
    check(row, spec, work, done.returncode)
    if done.returncode != 0:
        row.notes.append(done.stderr[-600:])


def crash_points(sink: str, query: str, seed: int, *, root: str, size: Size,
                 make: SpecFactory | None = None) -> Row:
    """SIGKILL at each named crash point of a random batch, then restart."""
    row, rng = Row("crash points", sink, query), random.Random(seed)
    make = make or file_input(root)
    for point in FAULT_POINTS:
        if point == "mid-sink-write" and sink == "foreach":
            continue  # foreachBatch has no such point: the user's function is the write
        spec, work = make(f"crash-{point}", sink, query, seed, size)
        batch = rng.randrange(1, size.files - 1)
        crashed = run_to_end(spec, {"UNBOUNDED_FAULT": f"{point}@{batch}"})
        row.faults += crashed.returncode == -9
        done = supervise(spec, rng, kills=0, first_killed=True)
        row.recoveries_s += done.recoveries_s
        check(row, spec, work, done.returncode)
    return row


def random_kills(sink: str, query: str, seed: int, *, root: str, size: Size,
                 make: SpecFactory | None = None) -> Row:
    """SIGKILL at random moments, restart each time, then let the last run finish."""
    row, rng = Row("random SIGKILL", sink, query), random.Random(seed)
    make = make or file_input(root)
    for i in range(size.repeats):
        bigger = Size(size.files * 6, size.per_file, size.repeats)
        spec, work = make(f"kill-{i}", sink, query, seed + i, bigger)
        # A stateless batch takes milliseconds, and on a busy machine the whole run can
        # end before a random delay does: its batches are slowed, so kills always land.
        slow = {} if query == "windowed" else {"UNBOUNDED_TEST_BATCH_DELAY": "0.05"}
        after = (0.0, 0.5) if query == "windowed" else (0.0, 0.15)
        done = supervise(spec, rng, kills=4, after_s=after, extra=slow)
        row.faults += done.kills
        row.recoveries_s += done.recoveries_s
        check(row, spec, work, done.returncode)
    return row


def _folders(sink: str, query: str) -> list[str]:
    """The folders this job's checkpoint (and file sink) write into."""
    folders = ["offsets", "commits", "sources"]
    folders += ["_spark_metadata"] if sink == "file" else []
    return folders + (["state"] if query == "windowed" else [])


def _fs_fault_specs(rng: random.Random, sink: str, query: str,
                    ops_per_kind: int) -> list[str]:
    """Per error, ``ops_per_kind`` of write/fsync/rename on a random checkpoint folder
    (ENOSPC stays: a full disk does not empty itself)."""
    folders = _folders(sink, query)
    return [f"{kind}:{op}:{rng.randrange(2, 5)}{'+' if kind == 'enospc' else ''}:"
            f"*/{rng.choice(folders)}/*"
            for kind in ("enospc", "eio", "erofs")
            for op in rng.sample(["write", "fsync", "rename"], ops_per_kind)]


def _reported(fault: str, proc: subprocess.CompletedProcess[str]) -> bool:
    words = {"enospc": "No space left", "eio": "Input/output error",
             "erofs": "Read-only file system"}
    return proc.returncode not in (0, -9) and words[fault.split(":", maxsplit=1)[0]] in proc.stderr


def _fired(log: str) -> int:
    if not os.path.exists(log):
        return 0
    with open(log) as f:
        return sum(1 for _ in f)


def fs_faults(sink: str, query: str, seed: int, *, root: str, size: Size,
              make: SpecFactory | None = None) -> Row:
    """ENOSPC, EIO and EROFS on the n-th write, fsync or rename of one checkpoint folder:
    the run fails naming the error, a restart without the fault finishes exactly."""
    row, rng = Row("ENOSPC/EIO/EROFS", sink, query), random.Random(seed)
    make = make or file_input(root)
    for i, fault in enumerate(_fs_fault_specs(rng, sink, query,
                                                       min(3, size.repeats))):
        spec, work = make(f"fs-{i}", sink, query, seed, size)
        log = os.path.join(spec.workdir, "faults.log")
        failed = run_to_end(spec, {"UNBOUNDED_CHECKPOINT_FILE_OPS": FAULTY_OPS,
                                   "UNBOUNDED_CHECKPOINT_FAULTS": fault,
                                   "UNBOUNDED_CHECKPOINT_FAULTS_LOG": log})
        fired = _fired(log) > 0
        row.faults += fired
        row.detected += fired and _reported(fault, failed)
        if fired and failed.returncode == 0:
            row.notes.append(f"{fault}: fired but the run ended 0")
        finish(row, spec, work)
    return row


# Where a power cut lands in the file sink's data (partitioned output): a data file's
# fsync, the fsync of a partition folder holding new files, of the output folder
# holding new partition folders.
_DATA_CUTS = (("fsync", "*/output/*part-*"), ("dirsync", "*/output/part=*/"),
              ("dirsync", "*/output/"))


def _checkpoint_cuts(sink: str, query: str) -> list[tuple[str, str]]:
    return [(op, f"*/{folder}/*") for op in ("rename", "dirsync")
            for folder in _folders(sink, query)]


def power_loss(sink: str, query: str, seed: int, *, root: str, size: Size,
               make: SpecFactory | None = None) -> Row:
    """Cut the power at the n-th rename or folder fsync of a checkpoint folder: what no
    fsync made durable is lost, then a restart must finish exactly."""
    return _power_cuts(Row("power loss", sink, query), _checkpoint_cuts(sink, query),
                       seed, root=root, size=size, make=make)


def power_loss_data(sink: str, query: str, seed: int, *, root: str, size: Size) -> Row:
    """Cut the power while the file sink makes its partitioned data files durable (a
    file's fsync, a partition folder's, the output folder's): no committed batch may
    name a file the cut took."""
    return _power_cuts(Row("power loss in sink data", sink, query), list(_DATA_CUTS),
                       seed, root=root, size=size)


# Where a power cut lands in a Delta commit (delta-rs makes no fsync; the sink fsyncs
# each data file, the folders holding them, the log entry, then _delta_log): a cut before
# the log entry is durable keeps it (the kernel may write it back early) and loses data.
_DELTA_CUTS = (("fsync", "*/output/*part-*"), ("dirsync", "*/output/part=*/"),
               ("dirsync", "*/output/"), ("fsync", "*/output/_delta_log/*.json"),
               ("dirsync", "*/output/_delta_log/"))


def power_loss_delta(sink: str, query: str, seed: int, *, root: str, size: Size) -> Row:
    """Cut the power while the Delta sink makes a commit durable: no committed batch may
    be lost or written twice, whichever of the commit's files the cut took."""
    return _power_cuts(Row("power loss in Delta commit", sink, query), list(_DELTA_CUTS),
                       seed, root=root, size=size)


def _power_cuts(row: Row, places: list[tuple[str, str]], seed: int, *, root: str,
                size: Size, make: SpecFactory | None = None) -> Row:
    rng, sink, query = random.Random(seed), row.sink, row.query
    make = make or file_input(root)
    for i in range(size.repeats * 3):
        spec, work = make(f"power-{i}", sink, query, seed + i, size)
        spec = replace(spec, env=(*spec.env, ("CHAOS_PARTITION", "1")))
        op, pattern = places[i % len(places)] if i < len(places) else rng.choice(places)
        fault = f"power:{op}:{rng.randrange(1, size.files)}:{pattern}"
        log = os.path.join(spec.workdir, "faults.log")
        cut = run_to_end(spec, {"UNBOUNDED_CHECKPOINT_FILE_OPS": FAULTY_OPS,
                                "UNBOUNDED_CHECKPOINT_FAULTS": fault,
                                "UNBOUNDED_CHECKPOINT_FAULTS_LOG": log})
        row.faults += cut.returncode == -9
        if cut.returncode != -9:
            row.notes.append(f"{fault}: never reached (exit {cut.returncode})")
        done = supervise(spec, rng, kills=0, first_killed=cut.returncode == -9)
        row.recoveries_s += done.recoveries_s
        check(row, spec, work, done.returncode)
    return row


def delayed_close(sink: str, query: str, seed: int, *, root: str, size: Size,
                  make: SpecFactory | None = None) -> Row:
    """Every checkpoint file's close takes 50 ms (a slow network file system)."""
    row = Row("delayed close", sink, query)
    spec, work = (make or file_input(root))("slow-close", sink, query, seed, size)
    log = os.path.join(spec.workdir, "faults.log")
    done = run_to_end(spec, {"UNBOUNDED_CHECKPOINT_FILE_OPS": FAULTY_OPS,
                             "UNBOUNDED_CHECKPOINT_FAULTS": "delay=0.05:close:1+:*",
                             "UNBOUNDED_CHECKPOINT_FAULTS_LOG": log})
    row.faults += _fired(log)
    check(row, spec, work, done.returncode)
    return row


def _plant_temps(checkpoint: str, rng: random.Random) -> int:
    planted = 0
    for folder, _, names in os.walk(checkpoint):
        if not any(n[0].isdigit() or n == "metadata" for n in names):
            continue  # only beside the files a killed writer could have been writing
        name = f".{rng.randrange(99)}.{rng.getrandbits(128):032x}.tmp"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"half a file")
        planted += 1
    return planted


def _temps_left(checkpoint: str) -> list[str]:
    return [os.path.join(folder, n) for folder, _, names in os.walk(checkpoint)
            for n in names if n.endswith(".tmp")]


def stray_temps(sink: str, query: str, seed: int, *, root: str, size: Size,
                make: SpecFactory | None = None) -> Row:
    """Temp files a killed writer left in every checkpoint folder are removed at start and
    never read."""
    row, rng = Row("stray temp files", sink, query), random.Random(seed)
    spec, work = (make or file_input(root))("temps", sink, query, seed, size)
    run_to_end(spec, {"UNBOUNDED_FAULT": f"after-sink@{size.files // 2}"})
    row.faults += _plant_temps(spec.checkpoint, rng)
    finish(row, spec, work)
    left = _temps_left(spec.checkpoint)
    row.detected = row.faults - len(left)
    row.notes += [f"stray temp file kept: {p}" for p in left]
    row.silent += bool(left)  # not read, but a leak the start-up must clean
    return row


Scenario = Callable[..., Row]  # (sink, query, seed, *, root, size)


def _trigger_faults(progress: list[dict[str, object]], files: int) -> list[str]:
    """What a clock jump must not cause: a watermark moving back, batches that spin."""
    marks = [str(p["watermark"]) for p in progress if p.get("watermark")]
    found = []
    if marks != sorted(marks):
        found.append(f"watermark moved back: {marks}")
    if len(progress) > files + 2:
        found.append(f"{len(progress)} batches for {files} files: the trigger spins")
    return found


def clock_jumps(sink: str, query: str, seed: int, *, root: str, size: Size,
                make: SpecFactory | None = None) -> Row:
    """The wall clock jumps days forward and back under a 50 ms processing-time trigger:
    event-time output unchanged, watermarks monotone, no extra or missing batches."""
    row, make = Row("clock jumps", sink, query), make or file_input(root)
    for i in range(size.repeats):
        spec, work = make(f"clock-{i}", sink, query, seed + i, size)
        progress_file = os.path.join(spec.workdir, "progress.jsonl")
        done = run_to_end(spec, {"CHAOS_CLOCK_SEED": str(seed + i),
                                 "CHAOS_PROGRESS": progress_file}, timeout_s=90)
        check(row, spec, work, done.returncode)
        if done.returncode != 0:
            row.notes.append(done.stderr[-600:])
            continue
        with open(progress_file) as f:
            progress = [json.loads(line) for line in f]
        row.faults += int(progress[-1]["jumps"]) if progress else 0
        wrong = _trigger_faults(progress, size.files)
        row.silent += bool(wrong)
        row.notes += wrong
    return row
