"""Whether a checkpoint is sound: every problem that would stop or mislead a restart.

:func:`validate_checkpoint` checks, with the engine's own readers:

- every file that has a checksum sidecar matches it, and every log entry parses
  (``metadata``, ``offsets/N``, ``commits/N``, file source logs, the sink's manifest);
- offset and commit ids are contiguous, each commit has its offsets, every batch but
  the last has committed, and each entry has one offset per source;
- a file source's offsets name batches its log holds;
- every state file opens (envelope, checksum, Arrow body, the recorded schema), each
  operator has its recorded number of partitions, and the files needed to recover the
  state of the last committed batch exist;
- given the file sink's folder: its manifest ids are contiguous, it neither lags the
  commits nor runs ahead of the offsets, and the files it lists exist.

Each :class:`Problem` names the file (or folder) it is about. The checkpoint and the
sink's folder may be URLs (``s3://bucket/cp``): everything is read through the
checkpoint's storage layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from unbounded.checkpoint.checksum import read_checked
from unbounded.checkpoint.logs import CommitLog, OffsetEntry, OffsetLog, QueryMetadata
from unbounded.checkpoint.storage import FsspecStorage, normalize_location, storage_for
from unbounded.errors import CheckpointCorruptError
from unbounded.files.manifest import FileSinkManifest
from unbounded.files.paths import local_path
from unbounded.sources.files import FileSourceLog
from unbounded.state.base import StateStoreId
from unbounded.state.files import StateFileKind
from unbounded.tools.inspect import NotACheckpointError
from unbounded.tools.rewind import REWOUND_DIR
from unbounded.tools.sink import manifest_batches, manifest_file
from unbounded.tools.stores import (
    listing_log,
    operator_ids,
    partitioning,
    reading_log,
    store_files,
    store_ids,
)

__all__ = ["Problem", "validate_checkpoint"]

_SIDECAR_SUFFIX = ".crc32c"


@dataclass(frozen=True)
class Problem:
    """Something wrong with ``file`` (a path), said in ``message``."""

    file: str
    message: str


@dataclass
class _Findings:
    """Problems in the order found; a file already found damaged is not re-reported."""

    problems: list[Problem] = field(default_factory=list)
    damaged: set[str] = field(default_factory=set)

    def add(self, file: str, message: str) -> None:
        if file not in self.damaged:
            self.problems.append(Problem(file, message))

    def damage(self, file: str, error: Exception) -> None:
        self.add(file, str(error))
        self.damaged.add(file)


def _checksummed_files(root: str) -> list[str]:
    """Every file under ``root`` that has a checksum sidecar."""
    store = storage_for(root)
    if isinstance(store, FsspecStorage):
        return _checksummed_objects(store, root)
    found = []
    for folder, subfolders, names in os.walk(root):
        if folder == root and REWOUND_DIR in subfolders:  # set aside, not read on restart
            subfolders.remove(REWOUND_DIR)
        for name in names:
            if name.startswith(".") and name.endswith(_SIDECAR_SUFFIX):
                target = os.path.join(folder, name[1:-len(_SIDECAR_SUFFIX)])
                if os.path.exists(target):
                    found.append(target)
    return sorted(found)


def _checksummed_objects(store: FsspecStorage, root: str) -> list[str]:
    """``_checksummed_files`` of a URL: the objects under it, each found by its sidecar."""
    objects = set(store.walk(root))
    aside = f"{root}/{REWOUND_DIR}/"
    targets = (f"{path.rpartition('/')[0]}/{name[1:-len(_SIDECAR_SUFFIX)]}"
               for path in objects
               if (name := path.rpartition("/")[2]).startswith(".")
               and name.endswith(_SIDECAR_SUFFIX))
    return sorted(t for t in targets if t in objects and not t.startswith(aside))


def _check_sums(root: str, found: _Findings) -> None:
    for path in _checksummed_files(root):
        try:
            read_checked(path)
        except CheckpointCorruptError as e:
            found.damage(path, e)


def _gaps(ids: list[int]) -> list[int]:
    return sorted(set(range(ids[0], ids[-1] + 1)) - set(ids)) if ids else []


def _ids(folder: str) -> list[int]:
    return sorted(int(n) for n in storage_for(folder).list(folder) if n.isdigit())


@dataclass(frozen=True)
class _Logs:
    """The offset and commit logs as far as they parse."""

    offsets: dict[int, OffsetEntry]
    offset_ids: list[int]
    commit_ids: list[int]

    @property
    def last_committed(self) -> int | None:
        return self.commit_ids[-1] if self.commit_ids else None


def _read_offsets(cp: str, ids: list[int], n_sources: int, found: _Findings
                  ) -> dict[int, OffsetEntry]:
    if not ids:
        return {}
    log, entries = OffsetLog(os.path.join(cp, "offsets")), {}
    for b in ids:
        try:
            entries[b] = log.get(b)
        except CheckpointCorruptError as e:
            found.damage(log.path(b), e)
            continue
        if n_sources and len(entries[b].offsets) != n_sources:
            found.add(log.path(b), f"batch {b} has {len(entries[b].offsets)} offsets; the "
                                   f"query has {n_sources} sources")
    return entries


def _read_commits(cp: str, ids: list[int], found: _Findings) -> None:
    if not ids:
        return
    log = CommitLog(os.path.join(cp, "commits"))
    for b in ids:
        try:
            log.get(b)
        except CheckpointCorruptError as e:
            found.damage(log.path(b), e)


def _check_order(cp: str, offset_ids: list[int], commit_ids: list[int],
                 found: _Findings) -> None:
    for name, ids in (("offsets", offset_ids), ("commits", commit_ids)):
        for b in _gaps(ids):
            found.add(os.path.join(cp, name, str(b)),
                      f"batch {b} is missing from the {name} log, which runs from {ids[0]} "
                      f"to {ids[-1]}")
    # Retention purges offsets before commits: commits below the offset log's start are
    # the rest of an interrupted purge, not damage.
    start = offset_ids[0] if offset_ids else 0
    for b in sorted(set(commit_ids) - set(offset_ids)):
        if b >= start:
            found.add(os.path.join(cp, "commits", str(b)), f"batch {b} committed but has no "
                                                           "offsets entry")
    for b in offset_ids[:-1]:
        if b not in commit_ids:
            found.add(os.path.join(cp, "offsets", str(b)),
                      f"batch {b} has offsets but no commit, and batch {b + 1} ran after it")


def _check_logs(cp: str, meta: QueryMetadata, found: _Findings) -> _Logs:
    offset_ids = _ids(os.path.join(cp, "offsets"))
    commit_ids = _ids(os.path.join(cp, "commits"))
    entries = _read_offsets(cp, offset_ids, len(meta.sources), found)
    _read_commits(cp, commit_ids, found)
    _check_order(cp, offset_ids, commit_ids, found)
    return _Logs(entries, offset_ids, commit_ids)


def _log_offset(offset: Any) -> int | None:
    if isinstance(offset, dict) and "logOffset" in offset:
        return int(offset["logOffset"])
    return None


def _check_source_log(cp: str, index: int, logs: _Logs, found: _Findings) -> None:
    folder = os.path.join(cp, "sources", str(index))
    wanted = {b: _log_offset(e.offsets[index]) for b, e in logs.offsets.items()
              if index < len(e.offsets)}
    if not any(v is not None for v in wanted.values()):
        return
    try:
        log = FileSourceLog(folder)
    except CheckpointCorruptError as e:
        found.damage(folder, e)
        return
    for b, log_batch in sorted(wanted.items()):
        if log_batch is not None and log_batch >= 0 and log_batch not in log.batches:
            found.add(os.path.join(cp, "offsets", str(b)),
                      f"batch {b} reads batch {log_batch} of the file source log {folder}, "
                      "which does not hold it")


def _check_store_files(store: StateStoreId, found: _Findings) -> None:
    files = store_files(store)
    log = listing_log(store)
    reads = [(log.delta_path(v), StateFileKind.DELTA, v) for v in files.deltas]
    reads += [(log.snapshot_path(v), StateFileKind.SNAPSHOT, v) for v in files.snapshots]
    for path, kind, version in reads:
        try:
            reader = reading_log(store, path, kind)
            if kind is StateFileKind.DELTA:
                reader.read_delta(version)
            else:
                list(reader.snapshot_chunks(version))
        except CheckpointCorruptError as e:
            found.damage(path, e)


def _check_recoverable(store: StateStoreId, version: int, found: _Findings) -> None:
    """The files that recovering ``version`` needs exist (not whether they read)."""
    log = listing_log(store)
    deltas, snapshots = log.versions()
    base = max((s for s in snapshots if s <= version), default=0)
    for v in range(base + 1, version + 1):
        if v not in deltas:
            found.add(log.delta_path(v), f"state version {v} of {store.path} is missing; "
                                         f"recovering version {version} (the state after the "
                                         "last committed batch) needs it")


def _check_operator(root: str, op: int, last_committed: int | None, found: _Findings) -> None:
    try:
        doc = partitioning(root, op)
    except CheckpointCorruptError as e:
        found.damage(os.path.join(root, str(op), "_metadata", "partitioning"), e)
        doc = None
    stores = store_ids(root, op)
    if doc is not None and last_committed is not None:
        present = {s.partition_id for s in stores}
        for p in sorted(set(range(int(doc["numPartitions"]))) - present):
            found.add(os.path.join(root, str(op), str(p)),
                      f"partition {p} of operator {op} has no state folder")
    for store in stores:
        _check_store_files(store, found)
        if last_committed is not None:
            _check_recoverable(store, last_committed + 1, found)


def _check_sink_ids(manifest: FileSinkManifest, logs: _Logs, found: _Findings) -> bool:
    batches = manifest_batches(manifest)
    if not batches:
        return False
    compacts = [b for b, c in batches.items() if c]
    for b in range(max(compacts, default=0), max(batches) + 1):
        if b not in batches:
            found.add(manifest_file(manifest, b, False), f"the file sink manifest has no "
                                                         f"entry for batch {b}")
    latest, last_offset = max(batches), max(logs.offset_ids, default=-1)
    if latest > last_offset:
        found.add(manifest_file(manifest, latest, batches[latest]),
                  f"the sink manifest holds batch {latest}, beyond the offset log (last "
                  f"{last_offset}): a restart would skip these batches' rows")
    if logs.last_committed is not None and latest < logs.last_committed:
        found.add(manifest.metadata_path, f"batch {logs.last_committed} committed but the "
                                          f"sink manifest ends at batch {latest}")
    return True


def _check_sink(path: str, logs: _Logs, found: _Findings) -> None:
    manifest = FileSinkManifest(normalize_location(path))
    _check_sums(manifest.metadata_path, found)
    if not _check_sink_ids(manifest, logs, found):
        return
    try:
        entries = manifest.all_entries()
    except CheckpointCorruptError as e:
        found.damage(manifest.metadata_path, e)
        return
    for entry in entries:
        file = local_path(entry["path"])
        if not _is_file(file):
            found.add(file, f"listed in the file sink manifest {manifest.metadata_path} "
                            "but missing")


def _is_file(path: str) -> bool:
    store = storage_for(path)
    return store.exists(path) if isinstance(store, FsspecStorage) else os.path.isfile(path)


def _metadata(cp: str, found: _Findings) -> QueryMetadata | None:
    path = os.path.join(cp, "metadata")
    if not storage_for(path).exists(path):
        raise NotACheckpointError(f"{cp} is not a checkpoint (no metadata file)")
    try:
        return QueryMetadata.read(cp)
    except CheckpointCorruptError as e:
        found.damage(os.path.join(cp, "metadata"), e)
        return None


def validate_checkpoint(checkpoint: str, sink_path: str | None = None) -> list[Problem]:
    """Every problem found in ``checkpoint`` (and the file sink at ``sink_path``);
    empty when it is sound. Either may be a URL (read through the storage layer)."""
    cp, found = normalize_location(checkpoint), _Findings()
    _check_sums(cp, found)
    meta = _metadata(cp, found) or QueryMetadata("", [], "")
    logs = _check_logs(cp, meta, found)
    for index in range(len(meta.sources)):
        _check_source_log(cp, index, logs, found)
    root = os.path.join(cp, "state")
    for op in operator_ids(root):
        _check_operator(root, op, logs.last_committed, found)
    if sink_path is not None:
        _check_sink(sink_path, logs, found)
    return found.problems
