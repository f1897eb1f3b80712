"""The manifest of a file sink: which files under an output folder belong to it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from unbounded.checkpoint.checksum import (
    RECOVERY_HINT,
    read_checked_text,
    remove_checked,
    write_checked,
)
from unbounded.checkpoint.storage import is_url, storage_for
from unbounded.errors import CheckpointCorruptError, MissingFileError
from unbounded.files.paths import local_path, path_uri

__all__ = ["DEFAULT_COMPACT_INTERVAL", "METADATA_DIR", "FileSinkManifest"]

METADATA_DIR = "_spark_metadata"
DEFAULT_COMPACT_INTERVAL = 10  # spark.sql.streaming.fileSink.log.compactInterval
_VERSION = "v1"
_ENTRY_NAME = re.compile(r"^(\d+)(\.compact)?$")


class FileSinkManifest:
    """Spark's ``_spark_metadata`` log of a file sink, read and written.

    The sink's output folder holds ``_spark_metadata/<batchId>`` for each committed batch:
    a version line ``v1`` and then one JSON object per line, one per file the batch wrote::

        v1
        {"path":"file:///out/part-00000-1b2c.parquet","size":1024,"isDir":false,"modificationTime":1700000000000,"blockReplication":1,"blockSize":33554432,"action":"add"}

    Every ``compact_interval``-th batch (those with ``(batchId + 1) % interval == 0``) is
    written as ``<batchId>.compact`` instead, holding every live entry up to and
    including it, so a reader starts from the latest compact file and reads only the
    batch files after it. An entry with ``"action":"delete"`` removes the file of the
    same path. A reader that meets another version line fails with
    :class:`CheckpointCorruptError`. Only files in the manifest are part of the output:
    files of a batch that crashed before its manifest entry are ignored by readers.
    Each log file's CRC-32C is kept in a sidecar ``.<name>.crc32c``
    (:mod:`unbounded.checkpoint.checksum`) and checked on every read, so Spark still reads
    the log and a damaged entry fails loudly instead of hiding files.

    The folder may be an fsspec URL (``s3://bucket/out``): the log goes through the
    checkpoint's storage layer, where an entry is published with ``create`` (on S3 a
    conditional PUT), so of two writers of one batch only the first publishes it, and
    entries' paths are then the data files' URLs.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> manifest = FileSinkManifest(out)
        >>> manifest.add_batch(0, [{"path": out + "/part-0.parquet", "size": 10}])
        >>> manifest.all_files() == [out + "/part-0.parquet"], manifest.latest_batch_id()
        (True, 0)
    """

    def __init__(self, path: str, compact_interval: int = DEFAULT_COMPACT_INTERVAL) -> None:
        if compact_interval <= 0:
            raise ValueError(f"compact_interval must be positive, got {compact_interval}")
        self.path = path
        self.metadata_path = os.path.join(path, METADATA_DIR)
        self.compact_interval = compact_interval
        self._store = storage_for(path)

    def _batches(self) -> dict[int, bool]:
        """Batch id -> whether its file is a compact file."""
        found: dict[int, bool] = {}
        for name in self._store.list(self.metadata_path):
            match = _ENTRY_NAME.match(name)
            if match:
                batch_id = int(match.group(1))
                found[batch_id] = found.get(batch_id, False) or bool(match.group(2))
        return found

    def latest_batch_id(self) -> int | None:
        batches = self._batches()
        return max(batches) if batches else None

    def latest_checked_batch_id(self) -> int | None:
        """``latest_batch_id``, once its entry has read back intact (checksum, version,
        entries); a damaged latest entry raises ``CheckpointCorruptError`` naming it, so
        a query never starts writing after a record it cannot read."""
        batches = self._batches()
        if not batches:
            return None
        latest = max(batches)
        self._read(latest, batches[latest])
        return latest

    def entry_path(self, batch_id: int) -> str:
        """The log file that records ``batch_id`` (a compact file every interval)."""
        compact = (batch_id + 1) % self.compact_interval == 0
        return os.path.join(self.metadata_path, f"{batch_id}.compact" if compact
                            else str(batch_id))

    def has_batch(self, batch_id: int) -> bool:
        return batch_id in self._batches()

    def all_entries(self) -> list[dict[str, Any]]:
        """The live ``add`` entries, in the order they were written."""
        batches = self._batches()
        if not batches:
            return []
        latest = max(batches)
        compacts = [b for b, is_compact in batches.items() if is_compact]
        first = max(compacts) if compacts else 0
        entries: list[dict[str, Any]] = []
        for batch_id in range(first, latest + 1):
            if batch_id not in batches:
                raise CheckpointCorruptError(
                    f"{self.metadata_path} has no entry for batch {batch_id} although later "
                    "batches exist; the manifest was damaged. Restore the missing file.",
                )
            entries.extend(self._read(batch_id, batches[batch_id]))
        return _live(entries)

    def all_files(self) -> list[str]:
        """The local paths of the files that are part of the sink's output."""
        return [local_path(e["path"]) for e in self.all_entries()]

    def existing_files(self, *, ignore_missing: bool = False) -> list[str]:
        """:meth:`all_files`, each checked to exist: a listed file that is gone fails with
        :class:`MissingFileError` naming it (Spark's ``ignoreMissingFiles=false``), or is
        skipped when ``ignore_missing``. Paths are literal: ``*`` or ``[`` in a name is
        never expanded, so a damaged entry cannot pick up other files."""
        files = self.all_files()
        missing = [p for p in files if not _is_file(p)]
        if missing and not ignore_missing:
            raise MissingFileError(
                f"[FAILED_READ_FILE.FILE_NOT_EXIST] Error while reading file "
                f"{path_uri(missing[0])}: it is listed in the file sink manifest "
                f"{self.metadata_path} but does not exist ({len(missing)} listed file(s) "
                "missing). Restore the file, or set the option (or the conf "
                "spark.sql.files.ignoreMissingFiles) ignoreMissingFiles=true to skip it.",
            )
        gone = set(missing)
        return [p for p in files if p not in gone]

    def add_batch(self, batch_id: int, entries: list[dict[str, Any]], *,
                  after: Sequence[Future[None]] = ()) -> None:
        """Publish the files of ``batch_id`` atomically; fails if the batch was published.

        Entries need a ``path`` (a local path or ``file://`` URI); missing fields get
        Spark's defaults. A sink stays idempotent by skipping batch ids for which
        :meth:`has_batch` (or ``latest_batch_id() >= batch_id``) holds. ``after``: the
        fsyncs of the data files it names, under way; the entry is named once they
        succeeded (``checksum.write_checked``).
        """
        normalised = [_normalise(e) for e in entries]
        if (batch_id + 1) % self.compact_interval == 0:
            live = _live([*self.all_entries(), *normalised])
            self._write(f"{batch_id}.compact", live, after)
            self._delete_before(batch_id - self.compact_interval)
        else:
            self._write(str(batch_id), normalised, after)

    def _delete_before(self, keep_from: int) -> None:
        """Delete log files older than the previous compact file: every reader that loaded
        that one, or the new one, still finds what it needs (Spark waits a while too)."""
        folder = self.metadata_path
        remove_checked(*(os.path.join(folder, name) for name in self._store.list(folder)
                         if (stem := name.removesuffix(".compact")).isdigit()
                         and int(stem) < keep_from))  # one folder fsync for them all

    def _write(self, name: str, entries: list[dict[str, Any]],
               after: Sequence[Future[None]] = ()) -> None:
        lines = [_VERSION, *(json.dumps(e, separators=(",", ":")) for e in entries)]
        write_checked(os.path.join(self.metadata_path, name), "\n".join(lines).encode(),
                      after=after)

    def _read(self, batch_id: int, is_compact: bool) -> list[dict[str, Any]]:
        name = f"{batch_id}.compact" if is_compact else str(batch_id)
        file = os.path.join(self.metadata_path, name)
        lines = read_checked_text(file).split("\n")
        if lines[0].strip() != _VERSION:
            raise CheckpointCorruptError(
                f"{file} starts with {lines[0][:20]!r}, not the version line {_VERSION!r}: "
                "it was written by an unsupported version or is damaged. " + RECOVERY_HINT,
            )
        try:
            return [_checked_entry(json.loads(line)) for line in lines[1:] if line.strip()]
        except (ValueError, TypeError) as e:
            raise CheckpointCorruptError(
                f"{file} holds a line that is not a manifest entry: {e}. " + RECOVERY_HINT,
            ) from e


def _is_file(path: str) -> bool:
    """Whether the data file ``path`` (a local path or a URL) exists."""
    return storage_for(path).exists(path) if is_url(path) else os.path.isfile(path)


def _checked_entry(entry: Any) -> dict[str, Any]:
    """``entry`` if it has the fields readers rely on (a path string, an action)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ValueError(f"expected an object with a 'path' string, found {entry!r:.80}")
    if not isinstance(entry.get("action", "add"), str):
        raise ValueError(f"'action' must be a string in {entry!r:.80}")
    return entry


def _normalise(entry: dict[str, Any]) -> dict[str, Any]:
    if "path" not in entry:
        raise ValueError(f"A manifest entry needs a 'path': {entry!r}")
    path = str(entry["path"])
    local = local_path(path)
    stat = os.stat(local) if os.path.exists(local) else None
    return {
        "path": path_uri(path),
        "size": int(entry.get("size", stat.st_size if stat else 0)),
        "isDir": bool(entry.get("isDir", False)),
        "modificationTime": int(entry.get(
            "modificationTime", stat.st_mtime_ns // 1_000_000 if stat else 0)),
        "blockReplication": int(entry.get("blockReplication", 1)),
        "blockSize": int(entry.get("blockSize", 33554432)),
        "action": str(entry.get("action", "add")),
    }


def _live(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deleted = {e["path"] for e in entries if e.get("action") == "delete"}
    return [e for e in entries if e.get("action", "add") == "add" and e["path"] not in deleted]
