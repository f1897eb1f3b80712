"""The Delta Lake sink (``writeStream.format("delta")``): exactly-once through ``txn``.

Each batch is one Delta commit made by ``deltalake`` (delta-rs) that carries, besides
its ``add`` (and, in complete mode, ``remove``) actions, the application transaction
action ``{"txn": {"appId": <query id>, "version": <batch id>}}``, as Spark's Delta sink
writes. Before writing, the sink reads the table's latest ``txn`` version for the query
id; a batch whose id is not above it is already in the table and is skipped, so a batch
re-run after a crash between the Delta commit and ``commits/N`` changes nothing. A batch
with no rows still commits (only its ``txn``), as Spark's sink does. A process killed
inside the write leaves at most Parquet files that no commit names: readers never see
them and ``VACUUM`` removes them.

Durability on a local disk: delta-rs makes no fsync, so after each commit the sink
fsyncs what the new versions name (every data file they add, the folders holding new
names up to the table folder, ``_delta_log/<version>.json`` and any checkpoint, then
``_delta_log``) before ``add_batch`` returns, i.e. before ``commits/N``. A power cut
that drops the Delta commit drops ``commits/N`` too (written later), and the re-run
batch finds no ``txn`` and writes again; a cut that keeps the commit makes the re-run a
no-op. A re-run skipped that way first checks that the version holding its ``txn``
still has every data file at its recorded size and fsyncs it (a process killed before
its fsyncs leaves a commit that only the page cache holds). A cut inside the fsyncs can
keep the log entry and lose data the kernel had not written back yet: if that version
is the table's newest, it is removed and the batch written again (as if the cut had
taken the whole commit); under later versions it is refused, naming the files.

A concurrent commit carrying a ``txn`` for the same query id makes delta-rs reject ours
(the Delta protocol's concurrent-transaction conflict): another run of the query is
writing, and the batch fails with :class:`ConcurrentQueryError`. Concurrent appends by
other writers do not conflict; delta-rs retries the commit on top of them.

:func:`write_batch` gives ``foreachBatch`` code the same protection.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import unquote

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError

from unbounded.checkpoint.atomic import fsync_dir, fsync_file, make_dirs
from unbounded.checkpoint.epoch import fence_for
from unbounded.errors import AnalysisException, ConcurrentQueryError, UnboundedError
from unbounded.files.paths import local_path
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.testing.faults import fault_point

__all__ = [
    "DeltaSink",
    "DeltaWriteSettings",
    "committed_batch",
    "make_versions_durable",
    "write_batch",
]

log = logging.getLogger(__name__)
_MODES: dict[str, Literal["append", "overwrite"]] = {"append": "append",
                                                     "complete": "overwrite"}


@runtime_checkable
class SupportsToArrow(Protocol):
    """A frame that converts itself to Arrow (unbounded's and PySpark's ``toArrow``)."""

    def toArrow(self) -> pa.Table: ...


@dataclass(frozen=True)
class DeltaWriteSettings:
    """How batches go into one table: its path, append or overwrite, layout, schema rule."""

    path: str
    mode: Literal["append", "overwrite"] = "append"
    partition_by: tuple[str, ...] = ()
    merge_schema: bool = False
    overwrite_schema: bool = False

    @classmethod
    def from_context(cls, ctx: SinkContext) -> DeltaWriteSettings:
        """Spark's Delta sink options: the path, outputMode, partitionBy, mergeSchema and
        (complete mode only) overwriteSchema."""
        path = ctx.option("path")
        if not path:
            raise AnalysisException(
                "The delta sink needs the table's path: .start('/tables/events') or "
                ".option('path', ...).", error_class="MISSING_PATH")
        mode = _MODES.get(ctx.output_mode)
        if mode is None:
            raise AnalysisException(
                f"Data source delta does not support {ctx.output_mode} output mode. Use "
                "outputMode('append') or outputMode('complete').",
                error_class="UNSUPPORTED_OUTPUT_MODE")
        merge = _bool(ctx, "mergeSchema")
        overwrite = _bool(ctx, "overwriteSchema")
        if overwrite and mode != "overwrite":
            raise AnalysisException(
                "Option overwriteSchema applies to complete output mode only (it replaces "
                "the table); in append mode use mergeSchema.", error_class="INVALID_OPTION")
        return cls(local_path(path), mode, ctx.partition_by, merge, overwrite)

    def schema_mode(self) -> Literal["merge", "overwrite"] | None:
        if self.overwrite_schema:
            return "overwrite"
        return "merge" if self.merge_schema else None


def _bool(ctx: SinkContext, key: str) -> bool:
    raw = (ctx.option(key) or "false").strip().lower()
    if raw not in ("true", "false"):
        raise AnalysisException(f"Option {key!r} must be 'true' or 'false', got {raw!r}.",
                                error_class="INVALID_OPTION")
    return raw == "true"


_LOG_DIR = "_delta_log"
_TXN_SEARCH = 100  # versions searched back for a re-run batch's txn


def _log_file(table: str, version: int, kind: str = "json") -> str:
    return os.path.join(table, _LOG_DIR, f"{version:020d}.{kind}")


def _actions(table: str, version: int) -> list[dict[str, object]]:
    """The actions of the log entry of ``version`` (one JSON object a line)."""
    with open(_log_file(table, version), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _data_files(table: str, actions: list[dict[str, object]]) -> Iterator[tuple[str, int]]:
    """(local path, recorded size) of each file the actions add; a path is relative to
    the table and URL-encoded (``k=c%252Fd/part-0.parquet``) as the protocol says."""
    for action in actions:
        added = action.get("add") or action.get("cdc")
        if isinstance(added, dict):
            relative = unquote(str(added["path"]))
            if "://" not in relative and not os.path.isabs(relative):
                yield os.path.join(table, relative), int(added.get("size", -1))


def _folders_up_to(table: str, folder: str) -> Iterator[str]:
    """``folder`` and each folder above it, up to and including ``table``."""
    while len(folder) > len(table):
        yield folder
        folder = os.path.dirname(folder)
    yield table


def make_versions_durable(table: str, first: int, last: int) -> None:
    """fsync what versions ``first..last`` of the local Delta table ``table`` wrote:
    each added data file, the folders holding them (deepest first, up to the table
    folder, which holds ``_delta_log`` and new partition folders), then each version's
    log entry and checkpoint, ``_last_checkpoint``, and ``_delta_log``. Data first, so
    the fsyncs never make a log entry durable before the files it names."""
    folders: set[str] = set()
    for version in range(first, last + 1):
        for path, _size in _data_files(table, _actions(table, version)):
            fsync_file(path)
            folders.update(_folders_up_to(table, os.path.dirname(path)))
    for folder in sorted(folders | {table}, key=len, reverse=True):
        fsync_dir(folder)
    for version in range(first, last + 1):
        for kind in ("json", "checkpoint.parquet"):
            if kind == "json" or os.path.exists(_log_file(table, version, kind)):
                fsync_file(_log_file(table, version, kind))
    last_checkpoint = os.path.join(table, _LOG_DIR, "_last_checkpoint")
    if os.path.exists(last_checkpoint):
        fsync_file(last_checkpoint)
    fsync_dir(os.path.join(table, _LOG_DIR))


def _txn_version(table: str, newest: int, app_id: str, batch_id: int) -> int | None:
    """The version whose log entry carries ``txn(app_id, batch_id)``, searched back from
    ``newest``; None when not among the last versions (or their entries are gone)."""
    for version in range(newest, max(-1, newest - _TXN_SEARCH), -1):
        if not os.path.exists(_log_file(table, version)):
            return None
        for action in _actions(table, version):
            txn = action.get("txn")
            if isinstance(txn, dict) and (txn.get("appId"), txn.get("version")) == (
                    app_id, batch_id):
                return version
    return None


def _lost_files(table: str, version: int) -> list[str]:
    """The data files of ``version`` that are missing or not at their recorded size."""
    lost = []
    for path, size in _data_files(table, _actions(table, version)):
        found = os.path.getsize(path) if os.path.exists(path) else None
        if found != size:
            lost.append(f"{path} ({'missing' if found is None else f'{found} bytes, not {size}'})")
    return lost


def _lost_error(table: str, version: int, batch_id: int, lost: list[str]) -> UnboundedError:
    return UnboundedError(
        f"Batch {batch_id} is committed to the Delta table {table} (version {version}), but "
        f"data files of that commit are gone: {', '.join(lost)}; lost in a power cut before "
        "they reached the disk, and later versions exist, so the commit cannot be taken "
        f"back. Restore the table from a backup, or remove {_log_file(table, version)} and "
        "every later version by hand so the batch is written again.",
        error_class="DELTA_COMMITTED_FILE_MISSING")


def _take_back(table: str, version: int) -> None:
    """Remove the newest log entry, whose data a power cut took: the table returns to
    the version before, as if the commit had been lost with its data."""
    os.unlink(_log_file(table, version))
    fsync_dir(os.path.join(table, _LOG_DIR))


def _open_table(path: str) -> DeltaTable | None:
    return DeltaTable(path) if DeltaTable.is_deltatable(path) else None


def committed_batch(path: str, app_id: str) -> int | None:
    """The highest batch id that ``app_id`` committed to the Delta table at ``path``
    (its ``txn`` version), or None when it wrote none or the table does not exist."""
    table = _open_table(local_path(path))
    return None if table is None else table.transaction_version(app_id)


def write_batch(data: SupportsToArrow | pa.Table, batch_id: int, path: str, query_id: str,
                *, settings: DeltaWriteSettings | None = None) -> bool:
    """Write one ``foreachBatch`` batch into a Delta table exactly once.

    The commit carries ``txn(appId=query_id, version=batch_id)``; a batch id at or below
    the table's ``txn`` version for ``query_id`` was written before and is skipped.
    Pass the streaming query's id (``query.id``, stable across restarts) or any id
    fixed for this writer. Returns whether it wrote.

    Example:
        >>> import tempfile, pyarrow as pa
        >>> table = tempfile.mkdtemp() + "/t"
        >>> write_batch(pa.table({"x": [1]}), 0, table, "q")
        True
        >>> write_batch(pa.table({"x": [1]}), 0, table, "q")  # the re-run is skipped
        False
    """
    rows = data if isinstance(data, pa.Table) else data.toArrow()
    chosen = settings if settings is not None else DeltaWriteSettings(local_path(path))
    return _TableWriter(chosen, query_id).write(batch_id, rows)


class _TableWriter:
    """One query's commits into one table, keeping the table handle between batches."""

    def __init__(self, settings: DeltaWriteSettings, app_id: str) -> None:
        self.settings = settings
        self.app_id = app_id
        self._table: DeltaTable | None = None
        # the last batch this writer committed through ``_table`` (None: none yet)
        self._own: int | None = None

    def refresh(self) -> DeltaTable | None:
        """The table at its newest version (None while it does not exist)."""
        if self._table is None:
            self._table = _open_table(self.settings.path)
        else:
            self._table.update_incremental()
        return self._table

    def committed(self) -> int | None:
        table = self.refresh()
        return None if table is None else table.transaction_version(self.app_id)

    def _done(self) -> int | None:
        """The app's txn version. After a commit of its own the handle is current for
        this app id without reading the log again: a newer txn of the same app id (a
        second run of the query) fails our next commit as a concurrent transaction."""
        return self._own if self._own is not None else self.committed()

    def write(self, batch_id: int, rows: pa.Table,
              before_commit: Callable[[], None] | None = None) -> bool:
        done = self._done()
        if done is not None and batch_id <= done and self._confirm(batch_id):
            log.info("Delta sink skips batch %d: the table's txn for %s is at %d",
                     batch_id, self.app_id, done)
            return False
        if before_commit is not None:
            before_commit()
        self._commit(batch_id, rows)
        return True

    def _local(self) -> bool:
        return "://" not in self.settings.path  # object stores: durable when acknowledged

    def _confirm(self, batch_id: int) -> bool:
        """Whether a skipped batch's commit stands: its files are all there, and now
        durable (a killed run may have left it in the page cache only). A newest commit
        whose data files a power cut took is taken back (False: write the batch again)."""
        table = self._table
        if not self._local() or table is None or self._own is not None:
            return True  # this writer made it durable itself
        newest = table.version()
        version = _txn_version(self.settings.path, newest, self.app_id, batch_id)
        if version is None:
            return True
        lost = _lost_files(self.settings.path, version)
        if not lost:
            make_versions_durable(self.settings.path, version, newest)
            return True
        has_checkpoint = os.path.exists(_log_file(self.settings.path, version,
                                                  "checkpoint.parquet"))
        if version != newest or has_checkpoint:
            raise _lost_error(self.settings.path, version, batch_id, lost)
        log.warning("Delta sink: version %d of %s holds batch %d but lost %s in a power "
                    "cut; removing that version and writing the batch again", version,
                    self.settings.path, batch_id, ", ".join(lost))
        _take_back(self.settings.path, version)
        self._table = _open_table(self.settings.path)
        return False

    def _commit(self, batch_id: int, rows: pa.Table) -> None:
        s = self.settings
        txn = CommitProperties(app_transactions=[Transaction(self.app_id, batch_id)])
        if self._table is None and self._local():
            make_dirs(s.path)  # its missing parents durably; delta-rs would make them plain
        before = self._table.version() if self._table is not None else -1
        try:
            write_deltalake(self._table if self._table is not None else s.path, rows,
                            mode=s.mode, partition_by=list(s.partition_by) or None,
                            schema_mode=s.schema_mode(), commit_properties=txn)
        except SchemaMismatchError as exc:
            raise _schema_error(s, exc) from None
        except CommitFailedError as exc:
            raise self._conflict(batch_id, exc) from None
        except DeltaError as exc:
            raise UnboundedError(
                f"Writing batch {batch_id} to the Delta table {s.path} failed: {exc}. "
                "Nothing of the batch is committed; it is retried when the query restarts.",
                error_class="DELTA_WRITE_FAILED") from None
        if self._table is None:
            self._table = DeltaTable(s.path)
        if self._local():
            make_versions_durable(s.path, before + 1, self._table.version())
        self._own = batch_id

    def _conflict(self, batch_id: int, exc: Exception) -> Exception:
        self._table = None  # the handle lost the race; the next batch opens a fresh one
        self._own = None
        done = committed_batch(self.settings.path, self.app_id)
        if done is not None and done >= batch_id:
            return ConcurrentQueryError(
                f"Another writer committed batch {done} of query {self.app_id} to the "
                f"Delta table {self.settings.path} while this run wrote batch {batch_id} "
                f"({exc}): two runs of the query are writing. Stop the other run.",
                error_class="DELTA_CONCURRENT_TRANSACTION")
        return UnboundedError(
            f"The Delta commit of batch {batch_id} to {self.settings.path} conflicted with "
            f"a concurrent commit ({exc}); nothing of the batch is committed. It is "
            "retried when the query restarts.", error_class="DELTA_COMMIT_CONFLICT")


def _schema_error(settings: DeltaWriteSettings, exc: Exception) -> AnalysisException:
    return AnalysisException(
        f"A schema mismatch was detected when writing to the Delta table {settings.path}: "
        f"{exc}. To add the new columns to the table, set .option('mergeSchema', 'true'); "
        "or make the query's columns match the table's.",
        error_class="DELTA_FAILED_TO_MERGE_FIELDS")


def _rows(batch: MicroBatch) -> pa.Table:
    """The batch's partitions as one table, chunks kept: delta-rs writes record batch by
    record batch, so copying them into one chunk first would only cost time."""
    if not batch.partitions:
        return batch.table()
    return pa.concat_tables(batch.partitions)


class DeltaSink:
    """Writes each batch as one Delta commit carrying ``txn(query id, batch id)``.

    Options: the table path (``.start(path)``), ``mergeSchema``, ``overwriteSchema``
    (complete mode), with ``partitionBy`` and the output mode (append or complete, which
    replaces the table's rows each batch).

    Example:
        >>> import tempfile
        >>> ctx = SinkContext("q1", None, {"path": tempfile.mkdtemp()}, "append", None)
        >>> DeltaSink("delta", ctx).last_committed_batch() is None
        True
    """

    def __init__(self, fmt: str, ctx: SinkContext) -> None:
        self.settings = DeltaWriteSettings.from_context(ctx)
        self._writer = _TableWriter(self.settings, ctx.query_id)
        self._fence = fence_for(ctx.checkpoint_path)

    @property
    def description(self) -> str:
        return f"DeltaSink[{self.settings.path}]"

    def last_committed_batch(self) -> int | None:
        """The query's ``txn`` version in the table, read from the table's log."""
        return self._writer.committed()

    def commit_record(self, batch_id: int) -> str:
        return (f"the txn action (appId={self._writer.app_id}, version={batch_id}) in "
                f"{os.path.join(self.settings.path, '_delta_log')}")

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        self._writer.write(batch_id, _rows(batch), lambda: self._before_commit(batch_id))

    def _before_commit(self, batch_id: int) -> None:
        fault_point("mid-sink-write", batch_id)
        if self._fence is not None:
            self._fence.check(self.commit_record(batch_id))

    def stop(self) -> None:
        """Nothing to release: every commit is complete when ``add_batch`` returns."""
