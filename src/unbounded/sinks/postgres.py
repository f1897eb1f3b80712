"""The PostgreSQL sink (``writeStream.format("postgresql")``): exactly-once by transaction.

Options are Spark's JDBC names: ``url`` (``jdbc:postgresql://host:port/db`` or a libpq
``postgresql://`` URI), ``user``, ``password``, ``dbtable`` (used verbatim, may be
``schema.table``), ``createTableOptions``; plus ours:

- ``mode``: ``append`` (default) or ``upsert`` with ``upsertKeys`` (comma-separated
  columns; ``INSERT ... ON CONFLICT`` from a staged COPY, the last row of a key wins).
- ``progressTable`` (default ``unbounded_sink_progress``): where batch ids are recorded.
- ``retryTimeoutMs`` (default 60000): how long lost connections are retried.

Each batch is one transaction: the rows go in with a binary COPY, and the query id's row
of the progress table moves to the batch id; a re-run batch already recorded is
skipped. A missing table is created from the result's schema with Spark's JDBC type
mapping (:mod:`unbounded.sinks.postgres_types`), in the first batch's transaction.
Output modes: append; update (needs ``mode=upsert``); complete (the table's rows are
replaced each batch, or upserted with ``mode=upsert``).

Example:
    >>> ctx = SinkContext("q1", None, {"url": "jdbc:postgresql://db:5432/shop",
    ...     "dbtable": "orders", "user": "app", "password": "s3cret"}, "append", None)
    >>> PostgresSink("postgresql", ctx).description
    'PostgresSink[table=orders, mode=append, server=db:5432/shop, user=app]'
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

import pyarrow as pa

from unbounded.checkpoint.epoch import EpochFence, fence_for
from unbounded.errors import AnalysisException
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.postgres_batches import (
    PROGRESS_TABLE,
    PostgresBatchWriter,
    PostgresTransaction,
)

__all__ = ["PostgresSink", "PostgresSinkOptions", "WriteMode"]

_log = logging.getLogger(__name__)


class WriteMode(enum.Enum):
    APPEND = "append"
    UPSERT = "upsert"


def _invalid(message: str) -> AnalysisException:
    return AnalysisException(message, error_class="INVALID_OPTION")


def _required(ctx: SinkContext, key: str, example: str) -> str:
    value = ctx.option(key)
    if not value:
        raise _invalid(f"Option '{key}' is required by the postgresql sink, e.g. "
                       f".option('{key}', '{example}').")
    return value


@dataclass(frozen=True)
class PostgresSinkOptions:
    """The sink's options, parsed and checked before the query starts."""

    url: str
    table: str
    mode: WriteMode
    keys: tuple[str, ...]
    user: str | None
    password: str | None
    progress_table: str
    retry_timeout_ms: int
    create_options: str
    complete: bool

    def __repr__(self) -> str:
        return f"PostgresSinkOptions(table={self.table!r}, mode={self.mode.value!r})"

    @classmethod
    def parse(cls, ctx: SinkContext) -> PostgresSinkOptions:
        mode = _parse_mode(ctx.option("mode"))
        keys = _parse_keys(ctx.option("upsertKeys"), mode)
        table = _required(ctx, "dbtable", "public.orders")
        if ";" in table:
            raise _invalid(f"Option 'dbtable' must name one table, got {table!r}.")
        if ctx.output_mode == "update" and mode is WriteMode.APPEND:
            raise AnalysisException(
                "The postgresql sink cannot apply update output mode by appending: updated "
                "rows would be added again. Use .option('mode', 'upsert') with "
                ".option('upsertKeys', '<key columns>'), or outputMode('append').",
                error_class="UNSUPPORTED_OUTPUT_MODE")
        return cls(
            url=_required(ctx, "url", "jdbc:postgresql://host:5432/database"), table=table,
            mode=mode, keys=keys, user=ctx.option("user"), password=ctx.option("password"),
            progress_table=ctx.option("progressTable") or PROGRESS_TABLE,
            retry_timeout_ms=_parse_timeout(ctx.option("retryTimeoutMs")),
            create_options=ctx.option("createTableOptions") or "",
            complete=ctx.output_mode == "complete")


def _parse_mode(raw: str | None) -> WriteMode:
    value = (raw or "append").strip().lower()
    try:
        return WriteMode(value)
    except ValueError:
        raise _invalid(f"Option 'mode' must be 'append' or 'upsert', got {raw!r}.") from None


def _parse_keys(raw: str | None, mode: WriteMode) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in (raw or "").split(",") if k.strip())
    if mode is WriteMode.UPSERT and not keys:
        raise _invalid("Option 'upsertKeys' is required with mode 'upsert': the key "
                       "columns, comma-separated, e.g. .option('upsertKeys', 'id').")
    if mode is WriteMode.APPEND and keys:
        raise _invalid("Option 'upsertKeys' applies to mode 'upsert' only; add "
                       ".option('mode', 'upsert') or remove it.")
    return keys


def _parse_timeout(raw: str | None) -> int:
    if raw is None:
        return 60_000
    if not raw.strip().isdigit():
        raise _invalid(f"Option 'retryTimeoutMs' must be a number of milliseconds, got "
                       f"{raw!r}.")
    return int(raw)


class PostgresSink:
    """Writes each batch into a PostgreSQL table exactly once (see the module docstring).

    The query id (stable across restarts of a checkpoint) names the batches in the
    progress table, so ``commit_record`` and ``last_committed_batch`` read them back.
    """

    def __init__(self, format: str, ctx: SinkContext) -> None:
        self._opts = PostgresSinkOptions.parse(ctx)
        self._writer = PostgresBatchWriter(
            self._opts.url, app_id=ctx.query_id, user=self._opts.user,
            password=self._opts.password, progress_table=self._opts.progress_table,
            retry_timeout_ms=self._opts.retry_timeout_ms)
        self._fence: EpochFence | None = fence_for(ctx.checkpoint_path)

    @property
    def description(self) -> str:
        user = self._writer.settings.params.get("user")
        return (f"PostgresSink[table={self._opts.table}, mode={self._opts.mode.value}, "
                f"server={self._writer.settings.server}, user={user}]")

    def prepare(self) -> None:
        """Connect and create the progress table while the first batch is read."""
        self._writer.connect()

    def last_committed_batch(self) -> int | None:
        return self._writer.last_committed_batch()

    def commit_record(self, batch_id: int) -> str:
        return (f"row query_id={self._writer.app_id!r} (batch >= {batch_id}) of "
                f"{self._opts.progress_table} on {self._writer.settings.server}")

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        rows = batch.table()
        written = self._writer.write_batch(batch_id, self._write(rows),
                                           before_commit=self._fence_check(batch_id))
        if written:
            _log.debug("PostgreSQL sink wrote batch %d (%d rows) to %s", batch_id,
                       rows.num_rows, self._opts.table)

    def _write(self, rows: pa.Table) -> Callable[[PostgresTransaction], object]:
        opts = self._opts
        match opts.mode:
            case WriteMode.UPSERT:
                return lambda tx: tx.upsert(rows, opts.table, opts.keys, opts.create_options)
            case WriteMode.APPEND if opts.complete:
                return lambda tx: tx.overwrite(rows, opts.table, opts.create_options)
            case WriteMode.APPEND:
                return lambda tx: tx.append(rows, opts.table, opts.create_options)
            case _:
                assert_never(opts.mode)

    def _fence_check(self, batch_id: int) -> Callable[[], None] | None:
        fence = self._fence
        if fence is None:
            return None
        what = f"batch {batch_id} to {self._opts.table}"
        return lambda: fence.check(what)

    def stop(self) -> None:
        self._writer.close()
