"""A folder of files as a stream: each batch reads the files that appeared since the last.

Like Spark's ``FileStreamSource``, offsets are ``{"logOffset": N}`` and the source keeps
its own log of which files make up batch N, written before batch N's offset is handed
out, so a re-run of N reads exactly the same files and a restart never reads a file
twice. Partition columns (``col=value`` folders) are discovered when the source is
defined, as Spark does, and each file's values come from its logged path.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.checksum import (
    RECOVERY_HINT,
    read_checked_text,
    remove_checked,
    write_checked,
)
from unbounded.checkpoint.epoch import fence_for
from unbounded.checkpoint.pools import SharedPool
from unbounded.checkpoint.storage import is_url, storage_for
from unbounded.config import DEFAULTS
from unbounded.engine.dtypes import to_polars_dtype
from unbounded.errors import AnalysisException, CheckpointCorruptError, MissingFileError
from unbounded.files.formats import ReadSettings, infer_schema, read_files
from unbounded.files.listing import DataFile, has_glob, list_data_files
from unbounded.files.partitions import PartitionLayout
from unbounded.files.paths import local_path, path_uri
from unbounded.files.stores import (
    file_size,
    is_file,
    is_folder,
    parquet_file,
    path_exists,
    under,
)
from unbounded.plan.intervals import parse_interval_ms
from unbounded.plan.types import StringType, StructField, StructType
from unbounded.sources.base import (
    InputPartition,
    Offset,
    SourceContext,
    parse_bool_option,
    parse_int_option,
)

__all__ = ["CleanSource", "FileInputPartition", "FileSource", "FileSourceLog",
           "FileSourceOptions"]

logger = logging.getLogger(__name__)

_DEFAULT_MAX_FILE_AGE = "7d"
_MAX_PARTITION_BYTES = 128 * 1024 * 1024
_SOURCE_OPTION_KEYS = frozenset({
    "path", "maxfilespertrigger", "maxbytespertrigger", "latestfirst", "maxfileage",
    "cleansource", "sourcearchivedir", "filenameonly", "ignoremissingfiles", "basepath",
})
_TYPE_INFERENCE = "spark.sql.sources.partitionColumnTypeInference.enabled"


class CleanSource(enum.Enum):
    """What happens to a file once the batch that read it is committed."""

    OFF = "off"
    ARCHIVE = "archive"
    DELETE = "delete"


@dataclass(frozen=True)
class FileSourceOptions:
    """The streaming options of a file source, parsed once."""

    path: str
    max_files: int | None
    max_bytes: int | None
    latest_first: bool
    max_file_age_ms: int
    clean_source: CleanSource
    archive_dir: str | None
    file_name_only: bool
    ignore_missing: bool = False

    @classmethod
    def from_context(cls, ctx: SourceContext) -> FileSourceOptions:
        max_files = parse_int_option(ctx, "maxFilesPerTrigger", None)
        max_bytes = parse_int_option(ctx, "maxBytesPerTrigger", None)
        latest_first = parse_bool_option(ctx, "latestFirst", False)
        # Spark: with latestFirst and a per-trigger limit, old files are still valid.
        ignore_age = latest_first and (max_files is not None or max_bytes is not None)
        age = parse_interval_ms(ctx.option("maxFileAge") or _DEFAULT_MAX_FILE_AGE)
        clean = _clean_source(ctx)
        archive = ctx.option("sourceArchiveDir")
        if clean is CleanSource.ARCHIVE and not archive:
            raise AnalysisException(
                "Option cleanSource='archive' needs option sourceArchiveDir: the folder "
                "that committed files are moved to.", error_class="INVALID_OPTION")
        return cls(_path(ctx), max_files, max_bytes, latest_first,
                   2**62 if ignore_age else age, clean,
                   (archive if is_url(archive) else os.path.abspath(archive))
                   if archive else None,
                   parse_bool_option(ctx, "fileNameOnly", False),
                   parse_bool_option(ctx, "ignoreMissingFiles", False))


def _path(ctx: SourceContext) -> str:
    path = ctx.option("path")
    if not path:
        raise AnalysisException(
            "A file source needs a path: use .load('/some/folder') or option('path', ...).",
            error_class="PATH_REQUIRED")
    return local_path(path)


def _clean_source(ctx: SourceContext) -> CleanSource:
    raw = (ctx.option("cleanSource") or "off").lower()
    try:
        return CleanSource(raw)
    except ValueError:
        raise AnalysisException(
            f"Option cleanSource must be 'off', 'archive' or 'delete', got {raw!r}.",
            error_class="INVALID_OPTION") from None


@dataclass(frozen=True)
class FileInputPartition:
    """Some files of one batch, read on their own by one task (picklable)."""

    format: str
    paths: tuple[str, ...]
    schema: StructType
    options: tuple[tuple[str, str], ...]
    ignore_missing: bool = False
    layout: PartitionLayout | None = None

    def read(self) -> pa.Table:
        if self.layout is None:
            return read_files(self.format, self._present(), self.schema, dict(self.options))
        data, options = _data_fields(self.schema, self.layout), dict(self.options)
        tables = [_with_values(read_files(self.format, files, data, options), self.layout,
                               values) for values, files in self._groups(self._present())]
        if not tables:
            return pa.Table.from_batches([], schema=self.schema.to_arrow_schema())
        return pa.concat_tables(tables)

    def _groups(self, paths: list[str]) -> list[tuple[list[pa.Scalar], list[str]]]:
        """The files by partition values, in order of first appearance."""
        assert self.layout is not None
        groups: dict[tuple[str | None, ...], list[str]] = {}
        for p in paths:
            groups.setdefault(self.layout.raw_values(p), []).append(p)
        return [(self.layout.typed_values(raw), files) for raw, files in groups.items()]

    def _present(self) -> list[str]:
        """The logged files, each checked to exist: a batch re-run after its input file
        vanished must fail naming it, not silently read less (Spark's
        ``ignoreMissingFiles=false``); ``ignoreMissingFiles`` skips it instead."""
        missing = [p for p in self.paths if not is_file(p)]
        if missing and not self.ignore_missing:
            raise MissingFileError(
                f"[FAILED_READ_FILE.FILE_NOT_EXIST] Error while reading file "
                f"{path_uri(missing[0])}: the file source logged it for this batch but it "
                f"no longer exists ({len(missing)} logged file(s) missing). Restore the "
                "file, or set the source option ignoreMissingFiles=true to skip it.")
        gone = set(missing)
        return [p for p in self.paths if p not in gone]

    def scan(self) -> tuple[pl.LazyFrame, int] | None:
        """Parquet files that share one layout, as a lazy scan cast to the schema."""
        # Polars' own object-store client knows nothing of fsspec's endpoint and
        # credentials: objects at a URL are read through the store by read().
        if self.format != "parquet" or not self.paths or any(is_url(p) for p in self.paths) \
                or len(self._present()) != len(self.paths):
            return None
        import pyarrow.parquet as pq  # loaded by every Parquet read already

        # One footer read per file gives its layout and its row count (a query over the
        # scan for the count cost as much as the map side).
        try:
            footers = [pq.read_metadata(p) for p in self.paths]
            layouts = [f.schema.to_arrow_schema().remove_metadata() for f in footers]
        except (OSError, pa.ArrowException):
            return None  # read() reports the unreadable file by name
        layout = layouts[0]
        if any(not other.equals(layout) for other in layouts[1:]):
            return None
        present = set(layout.names)
        groups = [([], list(self.paths))] if self.layout is None else self._groups(
            list(self.paths))
        frame = pl.concat([self._scan_group(files, values, present)
                           for values, files in groups])
        return frame, sum(f.num_rows for f in footers)

    def _scan_group(self, files: list[str], values: list[pa.Scalar],
                    present: set[str]) -> pl.LazyFrame:
        """Files of one partition: their columns cast to the schema, then the values."""
        data = _data_fields(self.schema, self.layout) if self.layout else self.schema
        columns = [pl.col(f.name).cast(to_polars_dtype(f.dataType)) if f.name in present
                   else pl.lit(None, dtype=to_polars_dtype(f.dataType)).alias(f.name)
                   for f in data.fields]
        keys = self.layout.columns.fields if self.layout else []
        constants = [pl.lit(v.as_py(), dtype=to_polars_dtype(k.dataType)).alias(k.name)
                     for k, v in zip(keys, values, strict=True)]
        return pl.scan_parquet(files).select([*columns, *constants])


def _data_fields(schema: StructType, layout: PartitionLayout) -> StructType:
    """``schema`` without its partition columns: what the files themselves hold."""
    keys = {n.lower() for n in layout.columns.names}
    return StructType([f for f in schema.fields if f.name.lower() not in keys])


def _with_values(table: pa.Table, layout: PartitionLayout,
                 values: list[pa.Scalar]) -> pa.Table:
    """The files' rows with the partition columns appended (Spark's order)."""
    for name, scalar in zip(layout.columns.names, values, strict=True):
        table = table.append_column(name, pa.repeat(scalar, table.num_rows))
    return table


@dataclass(frozen=True)
class _LogEntry:
    path: str  # local absolute path
    timestamp: int  # modification time in ms
    batch_id: int
    # bytes, as listed; Spark's log has no sizes, so an entry read back has None and
    # partitioning asks the store (_group_by_size)
    size: int | None = dataclasses.field(default=None, compare=False)


def _entry_line(entry: _LogEntry) -> str:
    """``entry`` as a line of the log (Spark's JSON fields, compact separators)."""
    return json.dumps({"path": path_uri(entry.path), "timestamp": entry.timestamp,
                       "batchId": entry.batch_id}, separators=(",", ":"))


_cleanup = SharedPool(1, "unbounded-log-cleanup")  # all source logs' removals


class FileSourceLog:
    """The file source's log: which files each batch reads (Spark's FileStreamSourceLog).

    ``<metadata_path>/<N>`` holds batch N: a version line ``v1`` and then one JSON object
    per file::

        v1
        {"path":"file:///data/in/a.json","timestamp":1700000000000,"batchId":0}

    As in Spark, every ``COMPACT_INTERVAL``-th batch (``(N + 1) % 10 == 0``) is written as
    ``<N>.compact``, holding the entries of every batch up to N, and the files it covers
    are then deleted, so the folder does not grow by one file per batch forever. A batch
    found both in a compact file and in its own file (a crash between the two steps, or
    Spark's delayed deletion) is read once. Other version lines are rejected with
    :class:`CheckpointCorruptError`. Without a metadata path (no checkpoint) the log lives
    in memory only. Each file's CRC-32C is kept in a sidecar ``.<name>.crc32c`` and
    verified on every read (:mod:`unbounded.checkpoint.checksum`); Spark's own logs have
    none and are read as they are.
    """

    VERSION = "v1"
    COMPACT_INTERVAL = 10

    def __init__(self, metadata_path: str | None) -> None:
        self.metadata_path = metadata_path
        self.batches: dict[int, list[_LogEntry]] = {}
        # Each batch's JSON lines, made once: a compact file repeats every batch's.
        self._lines: dict[int, list[str]] = {}
        self._counted = (-1, 0)  # files_through: (batch id, files through it)
        self._fence = fence_for(metadata_path)
        self._removal: Future[None] | None = None  # of the files the last compaction covers
        if metadata_path is not None:
            self._load(metadata_path)
        self._total = sum(map(len, self.batches.values()))  # files in all batches

    def _load(self, folder: str) -> None:
        names = storage_for(folder).list(folder)  # none: a new log
        compacts = sorted((n for n in names if n.endswith(".compact")
                           and n.removesuffix(".compact").isdigit()),
                          key=lambda n: int(n.removesuffix(".compact")))
        for name in reversed(compacts):  # the newest compact file covers the older ones
            for entry in self._read(os.path.join(folder, name)):
                self.batches.setdefault(entry.batch_id, []).append(entry)
            break
        for name in names:
            if name.isdigit() and int(name) not in self.batches:
                for entry in self._read(os.path.join(folder, name)):
                    self.batches.setdefault(entry.batch_id, []).append(entry)

    def _read(self, file: str) -> list[_LogEntry]:
        lines = read_checked_text(file).split("\n")
        if lines[0].strip() != self.VERSION:
            raise CheckpointCorruptError(
                f"{file} starts with {lines[0][:20]!r}, not {self.VERSION!r}: it was "
                "written by an unsupported version or is damaged. " + RECOVERY_HINT)
        try:
            raw = [json.loads(line) for line in lines[1:] if line.strip()]
            return [_LogEntry(local_path(r["path"]), int(r["timestamp"]), int(r["batchId"]))
                    for r in raw]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointCorruptError(
                f"{file} holds a malformed entry: {e}. " + RECOVERY_HINT) from e

    @property
    def latest_batch_id(self) -> int | None:
        return max(self.batches) if self.batches else None

    def add(self, batch_id: int, files: list[DataFile]) -> None:
        """Record batch ``batch_id``; durable before it returns."""
        self.close()
        entries = [_LogEntry(f.path, f.mtime_ms, batch_id, f.size) for f in files]
        own = [_entry_line(e) for e in entries]
        if self.metadata_path is not None:
            compact = (batch_id + 1) % self.COMPACT_INTERVAL == 0
            logged = [line for b in sorted(self.batches) if b < batch_id
                      for line in self._lines_of(b)] if compact else []
            lines = [self.VERSION, *logged, *own]
            name = f"{batch_id}.compact" if compact else str(batch_id)
            if self._fence is not None:
                self._fence.check(os.path.join(self.metadata_path, name))
            write_checked(os.path.join(self.metadata_path, name), "\n".join(lines).encode())
            if compact:
                self._delete_covered(batch_id)
        if batch_id <= self._counted[0]:  # a batch counted already is written again
            self._counted = (-1, 0)
        self._total += len(entries) - len(self.batches.get(batch_id, ()))
        self.batches[batch_id] = entries
        self._lines[batch_id] = own

    def files_total(self) -> int:
        return self._total

    def files_through(self, batch_id: int) -> int:
        """How many files the batches up to ``batch_id`` read: counted on from the last
        call's batch (a progress report asks every batch; the log keeps every batch)."""
        if batch_id < self._counted[0]:
            self._counted = (-1, 0)
        through, count = self._counted
        count += sum(len(self.batches.get(b, ())) for b in range(through + 1, batch_id + 1))
        self._counted = (batch_id, count)
        return count

    def _lines_of(self, batch_id: int) -> list[str]:
        lines = self._lines.get(batch_id)
        if lines is None:
            lines = self._lines[batch_id] = [_entry_line(e) for e in self.batches[batch_id]]
        return lines

    def _delete_covered(self, compact_id: int) -> None:
        """Remove the batch and compact files that ``<compact_id>.compact`` covers, on
        a background thread: ~20 removals took 30-60 ms of the query thread on a busy
        disk, and a covered file still there is read once (``_load``). The next ``add``
        and ``close`` wait for them, so no two removals and no listing overlap."""
        assert self.metadata_path is not None
        folder = self.metadata_path
        covered = [os.path.join(folder, name) for name in storage_for(folder).list(folder)
                   if (stem := name.removesuffix(".compact")).isdigit()
                   and int(stem) < compact_id]
        try:  # one folder fsync for them all, as before, now off the query thread
            self._removal = _cleanup.get().submit(remove_checked, *covered)
        except RuntimeError:  # the interpreter is exiting: the pool takes no new work
            remove_checked(*covered)

    def close(self) -> None:
        """Wait for the removal of compacted files under way (its error is logged: the
        files it left are read once)."""
        removal, self._removal = self._removal, None
        if removal is None:
            return
        try:
            removal.result()
        except Exception:
            logger.warning("Could not remove the source log files a compaction covers in %s",
                           self.metadata_path, exc_info=True)

    def check_covers(self, logged: Sequence[tuple[str, int]]) -> None:
        """Refuse a log that lacks a batch the offset log points at.

        ``logged`` pairs each retained ``offsets/N`` file with its ``logOffset``, in batch
        order. Log offsets never go back, and every log batch from the first to the last
        of them must be here: a lost entry would make its files look new and be read a
        second time."""
        for (before, low), (path, high) in itertools.pairwise(logged):
            if high < low:
                raise CheckpointCorruptError(
                    f"{path} points at batch {high} of the file source log, before the "
                    f"{low} of {before}: log offsets never go back, so one of them is "
                    "damaged. " + RECOVERY_HINT)
        wanted = [(p, n) for p, n in logged if n >= 0]
        if self.metadata_path is None or not wanted:
            return
        for batch_id in range(wanted[0][1], wanted[-1][1] + 1):
            if batch_id not in self.batches:
                raise CheckpointCorruptError(
                    f"The file source log entry {os.path.join(self.metadata_path, str(batch_id))} "
                    f"is missing, but {wanted[-1][0]} points at batch {wanted[-1][1]}: its "
                    "files would be read again as new. " + RECOVERY_HINT)

    def files_between(self, start: int, end: int) -> list[_LogEntry]:
        """The entries of batches ``start + 1 .. end``, in log order."""
        out = []
        for batch_id in range(start + 1, end + 1):
            if batch_id not in self.batches:
                raise CheckpointCorruptError(
                    f"The file source log in {self.metadata_path} has no batch {batch_id}; "
                    "the checkpoint is incomplete and this batch cannot be replayed.")
            out.extend(self.batches[batch_id])
        return out


class _SeenFiles:
    """Files already taken, forgetting those older than ``max_age_ms`` before the newest.

    Mirrors Spark's SeenFilesMap: a file is new when it is not known and not older than
    the purge threshold (the newest timestamp seen minus the maximum age).
    """

    def __init__(self, max_age_ms: int, file_name_only: bool) -> None:
        self.max_age_ms = max_age_ms
        self.file_name_only = file_name_only
        self.seen: dict[str, int] = {}
        self.latest = 0
        self.purge_threshold = 0

    def _key(self, path: str) -> str:
        return os.path.basename(path) if self.file_name_only else path

    def add(self, path: str, timestamp: int) -> None:
        self.seen[self._key(path)] = timestamp
        self.latest = max(self.latest, timestamp)

    def is_new(self, f: DataFile) -> bool:
        return f.mtime_ms >= self.purge_threshold and self._key(f.path) not in self.seen

    def may_become_new(self, f: DataFile) -> bool:
        """Whether ``f`` is new or may be later, once a purge forgets its key; not when
        its mtime is below the age threshold or not above the time seen under its key:
        the threshold only rises, and it forgets the key only once above that time."""
        seen = self.seen.get(self._key(f.path))
        return f.mtime_ms >= self.purge_threshold and (seen is None or seen < f.mtime_ms)

    def purge(self) -> None:
        self.purge_threshold = self.latest - self.max_age_ms
        self.seen = {k: t for k, t in self.seen.items() if t >= self.purge_threshold}


class FileSource:
    """Files appearing under a folder (or glob), read as csv, json, parquet, orc, avro or text.

    Options (Spark's): ``maxFilesPerTrigger``, ``maxBytesPerTrigger`` (a soft limit:
    a batch takes at least one file), ``latestFirst``, ``maxFileAge`` (default 7 days,
    relative to the newest file seen), ``fileNameOnly``, ``cleanSource``
    (``off``/``archive``/``delete``) with ``sourceArchiveDir``; the rest are passed to
    the format's reader (``header``, ``sep``, ``mode``...).
    """

    def __init__(self, format: str, ctx: SourceContext) -> None:
        self.format = format.lower()
        self.options = FileSourceOptions.from_context(ctx)
        self.layout = _partition_layout(ctx)
        data = ctx.schema if ctx.schema is not None else self._data_schema(format, ctx)
        self._schema = _with_partitions(data, self.layout)
        self._reader_options = tuple(sorted(
            (k, str(v)) for k, v in ctx.options.items() if k.lower() not in _SOURCE_OPTION_KEYS))
        ReadSettings.from_options(dict(self._reader_options))  # a bad option fails now
        self.log = FileSourceLog(ctx.metadata_path)
        self.seen = _SeenFiles(self.options.max_file_age_ms, self.options.file_name_only)
        for entries in self.log.batches.values():
            for e in entries:
                self.seen.add(e.path, e.timestamp)
        self.seen.purge()
        self._available_now: list[DataFile] | None = None
        self._unplanned = 0  # new files the last listing found but left for later batches
        self._cleaned_through = -1
        _check_archive_dir(self.options)

    @classmethod
    def infer_schema(cls, format: str, ctx: SourceContext) -> StructType:
        """The schema of the stream: the files' columns, then the partition columns.

        Fails if the path does not exist or needs a schema."""
        return _with_partitions(cls._data_schema(format, ctx), _partition_layout(ctx))

    @classmethod
    def _data_schema(cls, format: str, ctx: SourceContext) -> StructType:
        path = _path(ctx)
        if (is_url(path) or not has_glob(path)) and not path_exists(path):
            raise AnalysisException(
                f"[PATH_NOT_FOUND] Path does not exist: {path}. Create the folder before "
                "starting the query, or fix the path.", error_class="PATH_NOT_FOUND")
        if ctx.schema is None:
            return infer_schema(format, [path], ctx.options, streaming=True)
        if format.lower() == "text" and (
                len(ctx.schema.fields) != 1 or ctx.schema.fields[0].dataType != StringType()):
            raise AnalysisException(
                "Text data source supports only a single column of type string, and the "
                f"schema given is {ctx.schema.simpleString()}.", error_class="INVALID_SCHEMA")
        if format.lower() == "parquet":
            _check_parquet_schema(path, ctx.schema)
        return ctx.schema

    @property
    def schema(self) -> StructType:
        return self._schema

    @property
    def description(self) -> str:
        return f"FileStreamSource[{path_uri(self.options.path)}]"

    # -- offsets

    def latest_offset(self, start: Offset | None, *, respect_limits: bool = True) -> Offset | None:
        done = _log_offset(start)
        logged = self.log.latest_batch_id
        if logged is not None and logged > done:
            # Batches planned before a restart are handed out again, one per trigger.
            return {"logOffset": done + 1 if respect_limits else logged}
        new = self._new_files()
        files = self._take(new, respect_limits)
        self._unplanned = len(new) - len(files)
        if files:
            batch_id = max(done, -1 if logged is None else logged) + 1
            self.log.add(batch_id, files)
            for f in files:
                self.seen.add(f.path, f.mtime_ms)
            self.seen.purge()
            return {"logOffset": batch_id}
        self.seen.purge()
        return start

    def _new_files(self) -> list[DataFile]:
        if self._available_now is not None:  # a fixed listing: drop what is done with
            listed = self._available_now = [
                f for f in self._available_now if self.seen.may_become_new(f)]
        else:
            listed = list_data_files(self.options.path)
        new = [f for f in listed if self.seen.is_new(f)]
        if self.options.latest_first:
            new.sort(key=lambda f: (-f.mtime_ms, f.path))
        return new

    def _take(self, files: list[DataFile], respect_limits: bool) -> list[DataFile]:
        if not respect_limits:
            return files
        if self.options.max_files is not None:
            files = files[: self.options.max_files]
        if self.options.max_bytes is not None and files:
            taken, total = [files[0]], files[0].size
            for f in files[1:]:
                total += f.size
                if total > self.options.max_bytes:
                    break
                taken.append(f)
            files = taken
        return files

    def metrics(self, latest_consumed: Offset | None) -> dict[str, str]:
        """What is left to read (ours: Spark's file source reports nothing here).

        ``numFilesOutstanding``: files this source knows of that the batches through
        ``latest_consumed`` did not read (planned for later batches, or found by the last
        listing and held back by ``maxFilesPerTrigger``/``maxBytesPerTrigger``);
        ``numFilesProcessed``: files those batches read, over the checkpoint's life.
        """
        processed = self.log.files_through(_log_offset(latest_consumed))
        planned = self.log.files_total() - processed
        return {"numFilesOutstanding": str(planned + self._unplanned),
                "numFilesProcessed": str(processed)}

    def check_offsets(self, logged: Sequence[tuple[str, Offset | None]]) -> None:
        """Start-up cross-check: the log holds every batch the offset log points at."""
        self.log.check_covers([(path, _log_offset(o)) for path, o in logged])

    def prepare_for_available_now(self) -> None:
        """Fix the files visible now; later batches take only from these."""
        self._available_now = list_data_files(self.options.path)

    # -- reading

    def partitions(self, start: Offset | None, end: Offset) -> list[InputPartition]:
        entries = self.log.files_between(_log_offset(start), _log_offset(end))
        groups = _group_by_size(entries)
        return [FileInputPartition(self.format, tuple(g), self._schema, self._reader_options,
                                   self.options.ignore_missing, self.layout)
                for g in groups]

    # -- release

    def commit(self, end: Offset) -> None:
        last = _log_offset(end)
        if self.options.clean_source is CleanSource.OFF or last <= self._cleaned_through:
            return
        for batch_id in range(self._cleaned_through + 1, last + 1):
            for entry in self.log.batches.get(batch_id, []):
                self._clean(entry.path)
        self._cleaned_through = last

    def _clean(self, path: str) -> None:
        if not path_exists(path):
            return
        try:
            if self.options.clean_source is CleanSource.DELETE:
                storage_for(path).delete(path)
            else:
                _archive(path, self.options.archive_dir or "")
        except OSError as e:
            logger.warning("Could not %s source file %s: %s",
                           self.options.clean_source.value, path, e)

    def stop(self) -> None:
        self._available_now = None
        self.log.close()


def _partition_layout(ctx: SourceContext) -> PartitionLayout | None:
    """The partition columns of the files under the source's path (or option
    ``basePath``), typed by the user schema, else inferred unless the session's
    ``spark.sql.sources.partitionColumnTypeInference.enabled`` is false.

    A query's source gets the schema its DataFrame was defined with
    (``ctx.extra["planned_schema"]``): Spark fixes the partition columns then, so
    folders added since keep those types and add no columns."""
    root = _discovery_root(ctx)
    if root is None:
        return None
    conf: dict[str, str] = ctx.extra.get("conf", {})
    infer = str(conf.get(_TYPE_INFERENCE, "true")).lower() == "true"
    files = [f.path for f in list_data_files(_path(ctx))]
    planned: StructType | None = ctx.extra.get("planned_schema")
    zone = conf.get("spark.sql.session.timeZone") or DEFAULTS["spark.sql.session.timeZone"]
    layout = PartitionLayout.discover(root, files, planned or ctx.schema, infer_types=infer,
                                      check_values=planned is None, time_zone=zone)
    if layout is None or planned is None:
        return layout
    known = {n.lower() for n in planned.names}
    return layout if all(n.lower() in known for n in layout.columns.names) else None


def _discovery_root(ctx: SourceContext) -> str | None:
    """The folder whose ``col=value`` subfolders are partitions: option ``basePath``,
    else the source's path; none for a glob without ``basePath`` (as Spark)."""
    path, base = _path(ctx), ctx.option("basePath")
    root = local_path(base) if base else path
    root = root.rstrip("/") if is_url(root) else os.path.abspath(root)
    if (base is None and has_glob(path)) or not is_folder(root):
        return None
    if root != path.rstrip("/") and not under(path, root):
        raise AnalysisException(
            f"Wrong basePath {base} for the path {path}: basePath must be a folder that "
            "holds the path.", error_class="INVALID_OPTION")
    return root


def _with_partitions(data: StructType, layout: PartitionLayout | None) -> StructType:
    """Spark's streaming order: the data columns (a user schema's columns named like a
    partition column are the partition column), then the partition columns."""
    if layout is None:
        return data
    keys = {n.lower() for n in layout.columns.names}
    return StructType([*(f for f in data.fields if f.name.lower() not in keys),
                       *(StructField(k.name, k.dataType) for k in layout.columns.fields)])


def _log_offset(offset: Offset | None) -> int:
    if offset is None:
        return -1
    if isinstance(offset, dict) and "logOffset" in offset:
        return int(offset["logOffset"])
    if isinstance(offset, int):
        return offset
    raise CheckpointCorruptError(
        f"{offset!r} is not a file source offset; expected {{\"logOffset\": N}}.")


def _group_by_size(entries: Sequence[_LogEntry]) -> list[list[str]]:
    """Consecutive files in at least one group per core (and groups of at most about
    128 MiB), balanced by file count, so a thread pool reads them in parallel while many
    small files share a task. Sizes come from the listing, or, for a batch planned before
    a restart, from the store (a missing file counts 0: reading it decides)."""
    if not entries:
        return []
    paths = [e.path for e in entries]
    total = sum(e.size if e.size is not None else (file_size(e.path) or 0) for e in entries)
    count = min(len(paths), max(_parallelism(), -(-total // _MAX_PARTITION_BYTES)))
    base, extra = divmod(len(paths), count)
    groups: list[list[str]] = []
    start = 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        groups.append(paths[start:end])
        start = end
    return groups


def _parallelism() -> int:
    return os.cpu_count() or 1


def _archive(path: str, archive_dir: str) -> None:
    """Move ``path`` under ``archive_dir`` keeping its full path, as Spark does:
    ``/a/b/x.csv`` goes to ``<archive_dir>/a/b/x.csv``."""
    target = os.path.join(archive_dir, os.path.abspath(path).lstrip(os.sep))
    if os.path.exists(target):
        logger.warning("Not archiving %s: %s already exists", path, target)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.move(path, target)


def _check_archive_dir(options: FileSourceOptions) -> None:
    if options.archive_dir is None or options.clean_source is not CleanSource.ARCHIVE:
        return
    if is_url(options.path) or is_url(options.archive_dir):
        raise AnalysisException(
            f"cleanSource='archive' moves files, which a store at a URL cannot do "
            f"({options.path} to {options.archive_dir}). Use cleanSource='delete', or a "
            "local or shared file system path.", error_class="UNSUPPORTED_LOCATION")
    source = os.path.abspath(options.path if not has_glob(options.path)
                             else os.path.dirname(options.path.split("*")[0]))
    inside = os.path.commonpath([source, options.archive_dir]) == source
    if inside:
        raise AnalysisException(
            f"sourceArchiveDir {options.archive_dir} is inside the source path {source}: "
            "archived files would be read again. Choose a folder outside the source path.",
            error_class="INVALID_OPTION")



def _check_parquet_schema(path: str, schema: StructType) -> None:
    """Reject a declared schema whose column types contradict the Parquet files present
    (a column missing from the files is allowed: it reads as NULL, as in Spark)."""

    from unbounded.plan.types import from_arrow_type

    files = [f for f in list_data_files(path) if f.path.endswith(".parquet")]
    if not files:
        return
    try:
        with parquet_file(files[0].path) as first:
            found = first.schema_arrow
    except (OSError, pa.ArrowInvalid):
        return  # an unreadable file fails the batch that reads it, with its name
    declared = {f.name.lower(): f for f in schema.fields}
    for field in found:
        want = declared.get(field.name.lower())
        if want is None:
            continue
        have = from_arrow_type(field.type)
        if have != want.dataType and not _widens(have, want.dataType):
            raise AnalysisException(
                f"The schema given for {path} does not match its Parquet files: column "
                f"`{field.name}` is {have.simpleString()} in {files[0].path} but declared "
                f"{want.dataType.simpleString()}. Declare it as {have.simpleString()} (or cast "
                "it after reading), or leave out .schema(...) to use the files' schema.",
                error_class="SCHEMA_MISMATCH")


def _widens(have: object, want: object) -> bool:
    from unbounded.plan import types as T

    order: list[type] = [T.ByteType, T.ShortType, T.IntegerType, T.LongType]
    kinds: list[type] = [type(have), type(want)]
    if all(k in order for k in kinds):
        return order.index(kinds[0]) <= order.index(kinds[1])
    return isinstance(have, (T.FloatType, T.IntegerType, T.LongType)) and isinstance(
        want, T.DoubleType)
