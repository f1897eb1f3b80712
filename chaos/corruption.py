"""Damaged checkpoint files: truncate, flip a bit (with or without deleting its checksum
sidecar), empty or delete the newest file of each kind, after a clean run or mid-run
(killed after its sink wrote), then restart with more input. The restart must fail
naming the file (detected) or finish with exactly the oracle's output (repaired);
anything else is silent.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
from collections.abc import Callable

from chaos.report import Row
from chaos.scenarios import Size, SpecFactory, check, file_input, prepare
from chaos.supervisor import JobSpec, run_to_end
from chaos.workload import Workload
from unbounded.errors import CheckpointCorruptError

__all__ = ["DAMAGES", "corruption", "damage_targets"]


def _newest(pattern: str) -> str | None:
    found = [p for p in glob.glob(pattern) if os.path.basename(p)[0].isdigit()]
    if not found:
        return None
    return max(found, key=lambda p: (int(os.path.basename(p).split(".")[0]), p))


def damage_targets(spec: JobSpec) -> dict[str, str | None]:
    """The newest file of each kind this job's checkpoint and sink hold."""
    cp = spec.checkpoint
    targets = {
        "offsets": _newest(f"{cp}/offsets/*"), "commits": _newest(f"{cp}/commits/*"),
        "metadata": f"{cp}/metadata", "source log": _newest(f"{cp}/sources/0/*"),
        "epoch": _newest(f"{cp}/epochs/*"),
        "checksum sidecar": _sidecar(_newest(f"{cp}/offsets/*")),
    }
    if spec.sink == "file":
        targets["sink manifest"] = _newest(f"{spec.output}/_spark_metadata/*")
    if spec.query == "windowed":
        targets["state delta"] = _newest(f"{cp}/state/0/*/*.delta")
        targets["state snapshot"] = _newest(f"{cp}/state/0/*/*.snapshot")
    return targets


def _sidecar(path: str | None) -> str | None:
    if path is None:
        return None
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.crc32c")


def _truncate(path: str, rng: random.Random) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: rng.randrange(max(1, len(data)))])


def _flip(path: str, rng: random.Random) -> None:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if data:
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
    with open(path, "wb") as f:
        f.write(bytes(data))


def _empty(path: str, _rng: random.Random) -> None:
    with open(path, "wb"):
        pass


def _delete(path: str, _rng: random.Random) -> None:
    os.unlink(path)


def _flip_unchecked(path: str, rng: random.Random) -> None:
    """Flip a bit and delete the file's checksum sidecar (state files have none: their
    checksum is in the file), so the sidecar cannot give the change away."""
    sidecar = _sidecar(path)
    if sidecar is not None and os.path.exists(sidecar):
        os.unlink(sidecar)
    _flip(path, rng)


DAMAGES: dict[str, Callable[[str, random.Random], None]] = {
    "truncate": _truncate, "bit flip": _flip, "empty": _empty, "delete": _delete,
    "bit flip, sidecar deleted": _flip_unchecked}


def _hold_back(spec: JobSpec, half: int) -> str:
    """Move the input files from ``half`` on aside; returns the folder holding them."""
    aside = os.path.join(spec.workdir, "later")
    os.makedirs(aside)
    for name in sorted(os.listdir(spec.input))[half:]:
        shutil.move(os.path.join(spec.input, name), aside)
    return aside


def _bring_back(spec: JobSpec, aside: str) -> None:
    for name in sorted(os.listdir(aside)):
        shutil.move(os.path.join(aside, name), spec.input)


def _names_it(stderr: str, path: str) -> bool:
    return path in stderr or os.path.basename(path) in stderr


def _one(row: Row, spec: JobSpec, kind: str, damage: str, *, mid_run: bool,
         rng: random.Random, work: Workload) -> None:
    half = len(os.listdir(spec.input)) // 2
    aside = _hold_back(spec, half)
    extra = {"UNBOUNDED_FAULT": f"after-sink@{half - 1}"} if mid_run else {}
    first = run_to_end(spec, extra)
    target = damage_targets(spec).get(kind)
    if target is None or not os.path.exists(target):
        why = first.stderr.strip().splitlines()[-1:] if first.returncode not in (0, -9) else ""
        row.notes.append(f"{kind}: no file to damage (first run exit {first.returncode}"
                         f"{': ' if why else ''}{why})")
        return
    DAMAGES[damage](target, rng)
    row.faults += 1
    _bring_back(spec, aside)
    restarted = run_to_end(spec)
    if restarted.returncode != 0:
        named = _names_it(restarted.stderr, target)
        row.detected += 1
        row.runs += 1
        if not named:
            row.notes.append(f"{kind}/{damage}: failed without naming {target}: "
                             f"{restarted.stderr.strip().splitlines()[-1:]}")
        return
    before = row.silent
    try:
        check(row, spec, work, 0)
    except CheckpointCorruptError as e:  # the run ended 0; a reader of the output fails
        row.detected += 1
        row.runs += 1
        row.notes.append(f"{kind}/{damage}: restart ended 0, reading the output fails "
                         f"naming it: {_names_it(str(e), target)}")
        return
    row.detected += row.silent == before  # repaired exactly
    if row.silent > before:
        row.notes.append(f"{kind}/{damage}{' mid-run' if mid_run else ''}: SILENT "
                         f"({target}, seed {work.seed})")


def corruption(sink: str, query: str, seed: int, *, root: str, size: Size,
               kinds: list[str] | None = None, damages: list[str] | None = None,
               make: SpecFactory | None = None) -> Row:
    """Every kind x damage (or those named), after a clean run and mid-run."""
    row, rng = Row("corrupt files", sink, query), random.Random(seed)
    make = make or file_input(root)
    spec0, _ = prepare(root, "probe", sink, query, seed, size=size)
    for kind in kinds or list(damage_targets(spec0)):
        for damage in damages or list(DAMAGES):
            for mid_run in (False, True):
                name = f"corrupt-{kind.replace(' ', '_')}-{damage.replace(' ', '_')}"
                spec, work = make(f"{name}-{int(mid_run)}", sink, query, seed, size)
                _one(row, spec, kind, damage, mid_run=mid_run, rng=rng, work=work)
    return row
