"""Roll a stopped query back so that its next run starts at batch N.

What batches N and later left behind is moved, never deleted, into
``<checkpoint>/rewound/<UTC time>-to-<N>/`` (paths kept relative to the checkpoint; the
file sink's under ``sink/``), with ``rewind.json`` listing every move so it can be undone
by moving the files back:

- ``offsets/b`` and ``commits/b`` for b >= N (with their checksum sidecars);
- state files of versions above N (batch b turns version b into b + 1, so batch N
  starts from version N);
- given the file sink's folder: its ``_spark_metadata`` entries of batches >= N, then
  the data files only those entries listed.

Source logs stay: a file source hands out the batches it logged again, one per trigger,
so batch N reads the same files as before. Refused (:class:`RewindRefusedError`) when
the result could not run: batch N - 1 not committed or its log entries purged, state
version N no longer recoverable (maintenance deleted its files), or the file sink's
manifest not readable up to N - 1; and when a file sink's folder is not given, since a
restart would then skip batches its manifest still holds. The caller holds the
checkpoint's run lock (:func:`locked_checkpoint`) from planning to the last move.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from unbounded.checkpoint.atomic import write_atomic_replace
from unbounded.checkpoint.checksum import sidecar_path
from unbounded.checkpoint.lock import CheckpointLock
from unbounded.checkpoint.logs import QueryMetadata
from unbounded.checkpoint.storage import is_url
from unbounded.files.manifest import FileSinkManifest
from unbounded.tools.inspect import NotACheckpointError
from unbounded.tools.sink import manifest_batches, manifest_file
from unbounded.tools.stores import listing_log, operator_ids, store_files, store_ids

__all__ = [
    "FILE_SINK_FORMATS",
    "REWOUND_DIR",
    "Move",
    "RewindPlan",
    "RewindRefusedError",
    "UnsupportedLocationError",
    "apply_rewind",
    "locked_checkpoint",
    "plan_rewind",
    "refuse_urls",
]

REWOUND_DIR = "rewound"
FILE_SINK_FORMATS = frozenset({"parquet", "json", "csv", "text", "orc"})


class RewindRefusedError(ValueError):
    """The checkpoint cannot be rewound to the asked batch; the message says why."""


class UnsupportedLocationError(RewindRefusedError):
    """A tool that works on local folders only was given a URL. A ``RewindRefusedError``
    so that the command line reports any such tool as refused (exit code 1)."""


_URL_HELP = {
    "rewind": "it sets files aside by renaming them, and an object store has no rename "
              "(a copy and a delete, interrupted, would leave a half-rewound checkpoint). "
              "While no query runs, copy the checkpoint to a local folder (aws s3 sync), "
              "rewind it there and copy it back deleting what was set aside (aws s3 sync "
              "--delete), or start the query on a new checkpoint",
}


def refuse_urls(tool: str, *paths: str | None) -> None:
    """Refuse, naming what is unsupported, a checkpoint or sink folder given as a URL to a
    tool that works on local folders only (``rewind``)."""
    for path in paths:
        if path is not None and is_url(path):
            raise UnsupportedLocationError(
                f"'unbounded checkpoint {tool}' does not support {path}: a folder at a URL "
                f"is not supported by this tool yet; {_URL_HELP[tool]}.")


@dataclass(frozen=True)
class Move:
    """One file set aside: ``source`` is moved to ``target``."""

    kind: str  # offsets, commits, state, manifest, data
    source: str
    target: str


@dataclass
class RewindPlan:
    checkpoint: str
    to_batch: int
    aside: str
    moves: list[Move] = field(default_factory=list)
    sink_path: str | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        """How many files of ``kind`` move, not counting checksum sidecars."""
        return sum(1 for m in self.moves
                   if m.kind == kind and not os.path.basename(m.source).startswith("."))

    def to_json(self) -> dict[str, object]:
        return {"checkpoint": self.checkpoint, "toBatch": self.to_batch, "aside": self.aside,
                "sinkPath": self.sink_path, "notes": self.notes,
                "moves": [{"kind": m.kind, "from": m.source, "to": m.target}
                          for m in self.moves]}


@contextmanager
def locked_checkpoint(checkpoint: str) -> Iterator[None]:
    """Hold the query's run lock: no run starts, and none is running (else
    :class:`unbounded.errors.ConcurrentQueryError`)."""
    refuse_urls("rewind", checkpoint)
    if not os.path.exists(os.path.join(checkpoint, "metadata")):
        raise NotACheckpointError(f"{checkpoint} is not a checkpoint (no metadata file)")
    lock = CheckpointLock(checkpoint)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _ids(folder: str) -> list[int]:
    if not os.path.isdir(folder):
        return []
    return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def _with_sidecar(kind: str, path: str, aside: str, base: str) -> list[Move]:
    target = os.path.join(aside, os.path.relpath(path, base))
    moves = [Move(kind, path, target)]
    if os.path.exists(sidecar_path(path)):
        moves.append(Move(kind, sidecar_path(path), sidecar_path(target)))
    return moves


def _check_logs(cp: str, to: int) -> list[int]:
    """The offset log's ids, after refusing a target batch the logs cannot resume at."""
    offsets, commits = _ids(os.path.join(cp, "offsets")), _ids(os.path.join(cp, "commits"))
    if not offsets or to > offsets[-1]:
        raise RewindRefusedError(
            f"Nothing to rewind: the offset log ends at batch "
            f"{offsets[-1] if offsets else None}, and batch {to} never started.")
    if to < 0:
        raise RewindRefusedError(f"--to must be a batch id (0 or more), got {to}.")
    if to > 0 and (to - 1 not in commits or to - 1 not in offsets):
        raise RewindRefusedError(
            f"Cannot restart at batch {to}: batch {to - 1} has no "
            f"{'commit' if to - 1 in offsets else 'offsets entry'} (kept batches "
            f"{offsets[0]}-{offsets[-1]}, committed {commits[:1]}...{commits[-1:]}); "
            "retention purged it or it never committed. Rewind to a later batch.")
    return offsets


def _log_moves(cp: str, to: int, offsets: list[int], aside: str) -> list[Move]:
    """Newest first, each commit before its offsets: a rewind cut short leaves a
    checkpoint that resumes (re-running the batch its offsets still name)."""
    commits = set(_ids(os.path.join(cp, "commits")))
    moves: list[Move] = []
    for b in reversed([b for b in offsets if b >= to]):
        if b in commits:
            moves += _with_sidecar("commits", os.path.join(cp, "commits", str(b)), aside, cp)
        moves += _with_sidecar("offsets", os.path.join(cp, "offsets", str(b)), aside, cp)
    return moves


def _state_moves(cp: str, to: int, aside: str) -> list[Move]:
    root, moves = os.path.join(cp, "state"), []
    for op in operator_ids(root):
        for store in store_ids(root, op):
            files, log = store_files(store), listing_log(store)
            kept_deltas = {v for v in files.deltas if v <= to}
            base = max((s for s in files.snapshots if s <= to), default=0)
            lost = [v for v in range(base + 1, to + 1) if v not in kept_deltas]
            if lost:
                raise RewindRefusedError(
                    f"Cannot restart at batch {to}: its state (version {to} of {store.path}) "
                    f"needs the delta files of versions {lost[:10]}, which state maintenance "
                    "removed. Rewind to a later batch.")
            paths = [log.delta_path(v) for v in files.deltas if v > to]
            paths += [log.snapshot_path(v) for v in files.snapshots if v > to]
            moves += [Move("state", p, os.path.join(aside, os.path.relpath(p, cp)))
                      for p in sorted(paths)]
    return moves


def _check_manifest_kept(manifest: FileSinkManifest, to: int, kept: dict[int, bool]) -> None:
    if to == 0:
        return
    first = max((b for b, c in kept.items() if c), default=0)
    missing = [b for b in range(first, to) if b not in kept]
    if missing:
        raise RewindRefusedError(
            f"Cannot restart at batch {to}: the file sink manifest {manifest.metadata_path} "
            f"would need entries for batches {missing[:10]}, which it no longer holds "
            "(compacted away). Rewind to a later batch.")


def _manifest_moves(sink_path: str, to: int, aside: str) -> list[Move]:
    manifest = FileSinkManifest(os.path.abspath(sink_path))
    batches = manifest_batches(manifest)
    _check_manifest_kept(manifest, to, {b: c for b, c in batches.items() if b < to})
    moves: list[Move] = []
    for b in sorted((b for b in batches if b >= to), reverse=True):
        path = manifest_file(manifest, b, batches[b])
        moves += _with_sidecar("manifest", path, os.path.join(aside, "sink"), manifest.path)
    return moves


def _aside_folder(cp: str, to: int) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return os.path.join(cp, REWOUND_DIR, f"{stamp}-to-{to}")


def _sink_notes(meta: QueryMetadata, sink_path: str | None) -> list[str]:
    if meta.sink.lower() in FILE_SINK_FORMATS:
        if sink_path is None:
            raise RewindRefusedError(
                f"The query writes {meta.sink} files: give their folder with --sink PATH, so "
                "that its manifest is rewound too (a restart would otherwise skip the "
                "batches the manifest still holds).")
        return []
    return [f"The {meta.sink or 'unknown'} sink is not rewound: batches from the target "
            "on are written to it again."]


def plan_rewind(checkpoint: str, to: int, sink_path: str | None = None) -> RewindPlan:
    """What rewinding ``checkpoint`` to batch ``to`` would move; raises
    :class:`RewindRefusedError` when the rewound checkpoint could not run."""
    refuse_urls("rewind", checkpoint, sink_path)
    cp = os.path.abspath(checkpoint)
    meta = QueryMetadata.read(cp)
    if meta is None:
        raise NotACheckpointError(f"{checkpoint} is not a checkpoint (no metadata file)")
    notes = _sink_notes(meta, sink_path)
    offsets = _check_logs(cp, to)
    aside = _aside_folder(cp, to)
    moves = _log_moves(cp, to, offsets, aside) + _state_moves(cp, to, aside)
    if sink_path is not None:
        moves += _manifest_moves(sink_path, to, aside)
    return RewindPlan(cp, to, aside, moves, None if sink_path is None
                      else os.path.abspath(sink_path), notes)


def _move(move: Move) -> None:
    os.makedirs(os.path.dirname(move.target), exist_ok=True)
    shutil.move(move.source, move.target)


def _data_moves(plan: RewindPlan, before: set[str]) -> list[Move]:
    """The data files that only the set-aside manifest entries listed."""
    assert plan.sink_path is not None
    after = set(FileSinkManifest(plan.sink_path).all_files())
    return [Move("data", p, os.path.join(plan.aside, "sink", os.path.relpath(p, plan.sink_path)))
            for p in sorted(before - after) if os.path.exists(p)]


def _record(plan: RewindPlan) -> None:
    body = json.dumps(plan.to_json(), indent=1).encode()
    write_atomic_replace(os.path.join(plan.aside, "rewind.json"), body)


def apply_rewind(plan: RewindPlan) -> RewindPlan:
    """Carry ``plan`` out (the caller holds the run lock); returns it with the data
    file moves added. ``rewind.json`` is written before the first move and again at
    the end."""
    os.makedirs(plan.aside, exist_ok=True)
    _record(plan)
    before = set(FileSinkManifest(plan.sink_path).all_files()) if plan.sink_path else set()
    for move in plan.moves:
        _move(move)
    if plan.sink_path is not None:
        data = _data_moves(plan, before)
        for move in data:
            _move(move)
        plan.moves.extend(data)
    _record(plan)
    return plan
