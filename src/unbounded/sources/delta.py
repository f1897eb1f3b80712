"""A Delta Lake table as a stream (``readStream.format("delta").load(path)``).

Like Spark's ``DeltaSource``: the first batches read the table's snapshot at the version
current when the query first ran (unless ``startingVersion``/``startingTimestamp`` says
where to begin), then each new version's added files, in commit order. An offset names
a file position (Spark's ``DeltaSourceOffset``)::

    {"sourceVersion": 1, "reservoirId": "<table id>", "reservoirVersion": 7,
     "index": 2, "isStartingVersion": false}

meaning "files 0..2 of version 7 are read" (``index`` -1: none of it). The files of the
snapshot (``isStartingVersion``) are sorted by modification time and path; a version's
files are taken in the order of its commit file. ``maxFilesPerTrigger`` (default 1000)
and ``maxBytesPerTrigger`` (soft: at least one file) may cut a version between batches.

A version that removes data (``remove`` actions with ``dataChange``) fails the query
unless told otherwise: ``ignoreDeletes`` skips versions that only remove files,
``ignoreChanges`` also re-emits the files an update or merge rewrote (so rows may repeat),
``skipChangeCommits`` skips every version that removes data. Files added without
``dataChange`` (compaction) are never read again. A schema change in a version after the
one whose schema the query read fails it; a restart reads with the new schema.

Workaround: delta-rs's Python API has no call that lists one commit's actions
(``load_cdf`` needs change data feed enabled and yields rows, not files), so the source
reads ``_delta_log/<version>.json`` itself; the snapshot, history, schema and table id
come from ``deltalake``. Tables with deletion vectors or column mapping are refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from unbounded.checkpoint.checksum import read_checked_text, write_checked
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import AnalysisException, CheckpointCorruptError, UnboundedError
from unbounded.files.paths import local_path
from unbounded.plan.types import StructType
from unbounded.sources.base import (
    InputPartition,
    Offset,
    SourceContext,
    parse_bool_option,
    parse_int_option,
)

__all__ = ["DeltaFile", "DeltaInputPartition", "DeltaPosition", "DeltaSource",
           "DeltaSourceOptions"]

_DEFAULT_MAX_FILES = 1000
_REFUSED_FEATURES = ("deletionVectors", "columnMapping")


@dataclass(frozen=True)
class DeltaSourceOptions:
    """Spark's Delta source options, parsed once."""

    path: str
    max_files: int
    max_bytes: int | None
    starting_version: int | str | None
    starting_timestamp: str | None
    ignore_deletes: bool
    ignore_changes: bool
    skip_change_commits: bool

    @classmethod
    def from_context(cls, ctx: SourceContext) -> DeltaSourceOptions:
        version, timestamp = ctx.option("startingVersion"), ctx.option("startingTimestamp")
        if version is not None and timestamp is not None:
            raise AnalysisException(
                "Please either provide 'startingVersion' or 'startingTimestamp', not both.",
                error_class="DELTA_STARTING_VERSION_AND_TIMESTAMP_BOTH_SET")
        return cls(_path(ctx), parse_int_option(ctx, "maxFilesPerTrigger", None)
                   or _DEFAULT_MAX_FILES, parse_int_option(ctx, "maxBytesPerTrigger", None),
                   _starting_version(version), timestamp,
                   parse_bool_option(ctx, "ignoreDeletes", False),
                   parse_bool_option(ctx, "ignoreChanges", False),
                   parse_bool_option(ctx, "skipChangeCommits", False))


def _path(ctx: SourceContext) -> str:
    path = ctx.option("path")
    if not path:
        raise AnalysisException("A delta source needs the table's path: .load('/tables/t').",
                                error_class="PATH_REQUIRED")
    return local_path(path)


def _starting_version(raw: str | None) -> int | str | None:
    if raw is None or raw.strip().lower() == "latest":
        return None if raw is None else "latest"
    if not raw.strip().isdigit():
        raise AnalysisException(
            f"Option startingVersion must be a version number or 'latest', got {raw!r}.",
            error_class="INVALID_OPTION")
    return int(raw)


@dataclass(frozen=True)
class DeltaFile:
    """One added data file: its path under the table, size and partition values (strings
    as in the log, or typed values from a snapshot)."""

    path: str
    size: int
    partition_values: tuple[tuple[str, object], ...]


@dataclass(frozen=True, order=True)
class DeltaPosition:
    """A place in the stream: files ``0..index`` of ``version`` are read."""

    version: int
    index: int
    is_starting: bool

    @classmethod
    def parse(cls, offset: Offset) -> DeltaPosition:
        try:
            return cls(int(offset["reservoirVersion"]), int(offset["index"]),
                       bool(offset["isStartingVersion"]))
        except (KeyError, TypeError, ValueError):
            raise CheckpointCorruptError(
                f"{offset!r} is not a Delta source offset; expected reservoirVersion, "
                "index and isStartingVersion.") from None

    def offset(self, table_id: str) -> dict[str, object]:
        return {"sourceVersion": 1, "reservoirId": table_id, "reservoirVersion": self.version,
                "index": self.index, "isStartingVersion": self.is_starting}


@dataclass(frozen=True)
class DeltaInputPartition:
    """Some files of one batch, read by one task (picklable)."""

    root: str
    files: tuple[DeltaFile, ...]
    schema: StructType

    def read(self) -> pa.Table:
        target = self.schema.to_arrow_schema()
        tables = [_read_file(self.root, f, target) for f in self.files]
        return pa.concat_tables(tables) if tables else target.empty_table()


def _read_file(root: str, file: DeltaFile, target: pa.Schema) -> pa.Table:
    """A data file conformed to the table schema: partition columns filled from the log,
    columns it lacks as NULL (added by a later schema change)."""
    path = unquote(file.path)
    full = local_path(path) if "://" in path else os.path.join(root, path)
    data = pq.read_table(full)
    parts = dict(file.partition_values)
    columns = [_column(data, parts, f, data.num_rows) for f in target]
    return pa.Table.from_arrays(columns, schema=target)


def _column(data: pa.Table, parts: dict[str, object], field: pa.Field, rows: int) -> pa.Array:
    if field.name in data.column_names:
        return data.column(field.name).combine_chunks().cast(field.type)
    value = parts.get(field.name)
    if value is None:
        return pa.nulls(rows, field.type)
    source = pa.string() if isinstance(value, str) else None
    return pa.array([value] * rows, type=source).cast(field.type)


@dataclass(frozen=True)
class _Commit:
    """What one version does to the data: files added (with dataChange), removals."""

    version: int
    added: tuple[DeltaFile, ...]
    removed: tuple[str, ...]
    updated_added: bool  # whether adds come with removes (an update or merge)
    schema: dict[str, object] | None


class DeltaSource:
    """The files appended to a Delta table, version by version (see the module doc).

    Options: ``maxFilesPerTrigger``, ``maxBytesPerTrigger``, ``startingVersion``
    (a number or ``latest``), ``startingTimestamp``, ``ignoreDeletes``,
    ``ignoreChanges``, ``skipChangeCommits``.
    """

    def __init__(self, format: str, ctx: SourceContext) -> None:
        self.options = DeltaSourceOptions.from_context(ctx)
        self.root = self.options.path
        table = _open(self.root)
        self.table_id = str(table.metadata().id)
        self.schema_version = table.version()
        self._read_schema = json.loads(table.schema().to_json())
        self._schema = self.infer_schema(format, ctx)
        self._start_file = (os.path.join(ctx.metadata_path, "delta-start")
                            if ctx.metadata_path else None)
        self._start: DeltaPosition | None = None
        self._fixed_end: int | None = None
        self._commits: dict[int, _Commit] = {}

    @classmethod
    def infer_schema(cls, format: str, ctx: SourceContext) -> StructType:
        """The table's current schema; a schema given to the reader is refused, as Spark's
        Delta source does (the table defines it)."""
        if ctx.schema is not None:
            raise AnalysisException(
                "Delta does not support specifying the schema at read time: the table's "
                "schema is used. Remove .schema(...).", error_class="DELTA_SCHEMA_NOT_ALLOWED")
        table = _open(_path(ctx))
        return StructType.from_arrow(pa.schema(table.schema().to_arrow()))

    @property
    def schema(self) -> StructType:
        return self._schema

    @property
    def description(self) -> str:
        return f"DeltaSource[file://{self.root}]"

    # -- offsets

    def latest_offset(self, start: Offset | None, *, respect_limits: bool = True) -> Offset | None:
        position = self._position(start)
        taken, size = None, 0
        for count, (where, file) in enumerate(self._files_after(position), start=1):
            size += file.size
            if respect_limits and taken is not None and (
                    count > self.options.max_files or
                    (self.options.max_bytes is not None and size > self.options.max_bytes)):
                break
            taken = where
        return start if taken is None else taken.offset(self.table_id)

    def prepare_for_available_now(self) -> None:
        """Fix the end at the table's version now; later versions wait for another run."""
        self._fixed_end = _latest_version(self.root)

    def partitions(self, start: Offset | None, end: Offset) -> list[InputPartition]:
        last = DeltaPosition.parse(end)
        self._check_table(end)
        files = []
        for where, file in self._files_after(self._position(start), last.version):
            if where > last:
                break
            files.append(file)
        return [DeltaInputPartition(self.root, tuple(g), self._schema)
                for g in _groups(files)]

    def commit(self, end: Offset) -> None:
        """Nothing to release; versions before ``end`` are dropped from the cache."""
        done = DeltaPosition.parse(end).version
        self._commits = {v: c for v, c in self._commits.items() if v >= done}

    def stop(self) -> None:
        self._fixed_end = None

    # -- positions

    def _position(self, start: Offset | None) -> DeltaPosition:
        if start is None:
            return self._initial()
        self._check_table(start)
        return DeltaPosition.parse(start)

    def _check_table(self, offset: Offset) -> None:
        seen = offset.get("reservoirId") if isinstance(offset, dict) else None
        if seen is not None and seen != self.table_id:
            raise AnalysisException(
                f"The Delta table at {self.root} has id {self.table_id}, but the checkpoint "
                f"was read from table {seen}: the table was replaced. Start the query with "
                "a new checkpoint.", error_class="DELTA_DIFFERENT_TABLE")

    def _initial(self) -> DeltaPosition:
        """Where the stream begins, fixed once and kept in the checkpoint, so a re-run of
        the first batch starts at the same place ('latest' would move)."""
        if self._start is None:
            self._start = self._load_start() or self._resolve_start()
        return self._start

    def _load_start(self) -> DeltaPosition | None:
        path = self._start_file  # in the checkpoint: a local folder or a URL
        if path is None or not storage_for(path).exists(path):
            return None
        return DeltaPosition.parse(json.loads(read_checked_text(path)))

    def _resolve_start(self) -> DeltaPosition:
        latest = _latest_version(self.root)
        opts = self.options
        if opts.starting_timestamp is not None:
            start = DeltaPosition(self._version_at(opts.starting_timestamp, latest), -1, False)
        elif opts.starting_version == "latest":
            start = DeltaPosition(latest + 1, -1, False)
        elif isinstance(opts.starting_version, int):
            start = DeltaPosition(_check_version(opts.starting_version, latest), -1, False)
        else:
            start = DeltaPosition(latest, -1, True)
        if self._start_file is not None:
            storage_for(self._start_file).make_folder(os.path.dirname(self._start_file))
            write_checked(self._start_file, json.dumps(start.offset(self.table_id)).encode())
        return start

    def _version_at(self, text: str, latest: int) -> int:
        """The first version committed at or after the timestamp (latest + 1 if none)."""
        moment = _parse_timestamp(text)
        history = _open(self.root).history()
        after = [int(h["version"]) for h in history if int(h["timestamp"]) >= moment]
        return min(after) if after else latest + 1

    # -- files

    def _files_after(self, position: DeltaPosition,
                     until: int | None = None) -> Iterator[tuple[DeltaPosition, DeltaFile]]:
        """Every file after ``position``, in stream order, with its own position."""
        if position.is_starting:
            snapshot = self._snapshot(position.version)
            for i in range(position.index + 1, len(snapshot)):
                yield DeltaPosition(position.version, i, True), snapshot[i]
        first = position.version + 1 if position.is_starting else position.version
        last = until if until is not None else (
            self._fixed_end if self._fixed_end is not None else _latest_version(self.root))
        for version in range(first, last + 1):
            skip = position.index if version == position.version else -1
            added = self._commit(version).added
            for i in range(skip + 1, len(added)):
                yield DeltaPosition(version, i, False), added[i]

    def _snapshot(self, version: int) -> list[DeltaFile]:
        table = DeltaTable(self.root, version=version)
        rows = pa.table(table.get_add_actions(flatten=False)).to_pylist()
        rows.sort(key=lambda r: (r["modification_time"], r["path"]))
        return [DeltaFile(r["path"], int(r["size_bytes"]),
                          tuple(sorted((r.get("partition_values") or {}).items())))
                for r in rows]

    def _commit(self, version: int) -> _Commit:
        commit = self._commits.get(version)
        if commit is None:
            commit = self._checked(_read_commit(self.root, version))
            self._commits[version] = commit
        return commit

    def _checked(self, commit: _Commit) -> _Commit:
        """Spark's stream hygiene: a version that removes data fails unless an option
        says to skip it; what the options let through is returned."""
        if commit.schema is not None and commit.version > self.schema_version and \
                commit.schema != self._read_schema:
            raise UnboundedError(
                f"Detected schema change in version {commit.version} of the Delta table "
                f"{self.root}. Please try restarting the query: it then reads with the new "
                "schema.", error_class="DELTA_SCHEMA_CHANGED")
        if not commit.removed:
            return commit
        opts = self.options
        if opts.skip_change_commits:
            return _Commit(commit.version, (), commit.removed, False, commit.schema)
        if commit.updated_added:
            if opts.ignore_changes:
                return commit
            raise _change_error(self.root, commit, "ignoreChanges")
        if opts.ignore_deletes or opts.ignore_changes:
            return commit
        raise _change_error(self.root, commit, "ignoreDeletes")


def _change_error(root: str, commit: _Commit, option: str) -> UnboundedError:
    if option == "ignoreDeletes":
        return UnboundedError(
            f"Detected deleted data (for example {commit.removed[0]}) from streaming source "
            f"at version {commit.version} of {root}. This is currently not supported. If "
            "you'd like to ignore deletes, set the option 'ignoreDeletes' to 'true' (or "
            "'skipChangeCommits' to skip every commit that removes data).",
            error_class="DELTA_SOURCE_IGNORE_DELETE")
    return UnboundedError(
        f"Detected a data update (for example {commit.removed[0]}) in the source table at "
        f"version {commit.version} of {root}. This is currently not supported. If you'd "
        "like to skip such commits, set the option 'skipChangeCommits' to 'true'; to read "
        "the rewritten files again (rows may repeat), set 'ignoreChanges' to 'true'.",
        error_class="DELTA_SOURCE_TABLE_IGNORE_CHANGES")


def _read_commit(root: str, version: int) -> _Commit:
    path = os.path.join(root, "_delta_log", f"{version:020d}.json")
    try:
        with open(path, encoding="utf-8") as f:
            actions = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        raise UnboundedError(
            f"The stream needs version {version} of the Delta table {root}, but its commit "
            f"file {path} is gone (log retention removed it). Restart the query with a new "
            "checkpoint and a startingVersion that still exists.",
            error_class="DELTA_VERSION_NOT_FOUND") from None
    return _commit_of(version, actions)


def _commit_of(version: int, actions: list[dict[str, Any]]) -> _Commit:
    adds = [a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)]
    removes = [a["remove"]["path"] for a in actions
               if "remove" in a and a["remove"].get("dataChange", True)]
    for add in adds:
        if add.get("deletionVector"):
            raise UnboundedError(f"Version {version} adds a file with a deletion vector "
                                 f"({add['path']}); the delta source cannot read those.",
                                 error_class="DELTA_UNSUPPORTED_FEATURE")
    meta = next((a["metaData"] for a in actions if "metaData" in a), None)
    schema = json.loads(str(meta["schemaString"])) if meta is not None else None
    files = tuple(DeltaFile(a["path"], int(a["size"]),
                            tuple(sorted((a.get("partitionValues") or {}).items())))
                  for a in adds)
    return _Commit(version, files, tuple(removes), bool(adds and removes), schema)


def _open(path: str) -> DeltaTable:
    if not DeltaTable.is_deltatable(path):
        raise AnalysisException(
            f"[DELTA_TABLE_NOT_FOUND] {path} is not a Delta table (no _delta_log). Create "
            "the table before starting the query, or fix the path.",
            error_class="DELTA_TABLE_NOT_FOUND")
    table = DeltaTable(path)
    features = set(table.protocol().reader_features or ())
    refused = [f for f in _REFUSED_FEATURES if f in features]
    if refused:
        raise AnalysisException(
            f"The Delta table {path} uses {', '.join(refused)}, which the delta source "
            "cannot read yet.", error_class="DELTA_UNSUPPORTED_FEATURE")
    return table


def _latest_version(root: str) -> int:
    names = os.listdir(os.path.join(root, "_delta_log"))
    return max(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())


def _check_version(version: int, latest: int) -> int:
    if version > latest:
        raise AnalysisException(
            f"Cannot time travel Delta table to version {version}. Available versions: "
            f"[0, {latest}]. Choose a startingVersion that exists.",
            error_class="DELTA_VERSION_NOT_AVAILABLE")
    return version


def _parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch of a date or timestamp string (UTC unless given)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AnalysisException(
            f"Option startingTimestamp must be a timestamp or date such as "
            f"'2024-05-01 12:00:00' or '2024-05-01', got {text!r}.",
            error_class="INVALID_OPTION") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _groups(files: list[DeltaFile]) -> list[list[DeltaFile]]:
    """Consecutive files, one group per core, so a thread pool reads them in parallel."""
    if not files:
        return []
    count = min(len(files), os.cpu_count() or 1)
    base, extra = divmod(len(files), count)
    out, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        out.append(files[start:end])
        start = end
    return out
