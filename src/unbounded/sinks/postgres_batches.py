"""Exactly-once batches into PostgreSQL: one transaction holds a batch's rows and its id.

:class:`PostgresBatchWriter` runs a batch's writes in one transaction that also moves
the writer's row of the progress table to the batch id; a batch whose id is already
recorded is skipped. A crash, a lost connection or a server restart before ``COMMIT``
leaves nothing of the batch; after it, the re-run finds the id and writes nothing. It
backs ``writeStream.format("postgresql")`` and is the helper for ``foreachBatch`` code
that writes its own SQL::

    writer = PostgresBatchWriter("jdbc:postgresql://db:5432/shop", user="app",
                                 password=secret, app_id="orders-to-postgres")

    def write(df, batch_id):
        writer.write_batch(batch_id, lambda tx: tx.append(df, "orders"))

    df.writeStream.foreachBatch(write).option("checkpointLocation", cp).start()

``app_id`` names the stream in the progress table (the sink uses the query id): keep it
for the life of the checkpoint and give each stream its own.

Lost connections, server restarts and serialization failures are retried with a
bounded backoff for ``retry_timeout_ms``; then the error names the server (never the
password). The password is masked in every message the writer raises or logs.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import psycopg
import pyarrow as pa
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from unbounded.errors import AnalysisException, UnboundedError
from unbounded.sinks.postgres_copy import encode_binary_copy
from unbounded.sinks.postgres_types import column_ddl, quote_identifier
from unbounded.testing.faults import fault_point

__all__ = [
    "PROGRESS_TABLE",
    "ArrowData",
    "ConnectionSettings",
    "PostgresBatchWriter",
    "PostgresTransaction",
    "ProgressTable",
]

_log = logging.getLogger(__name__)

PROGRESS_TABLE = "unbounded_sink_progress"
REDACTED = "*********(redacted)"
_STAGE = "_unbounded_stage"
_STAGE_ROW = "_unbounded_row"
# connection exceptions (08), shutdown/starting (57P0x), too many connections, retryable
_TRANSIENT_STATES = {"57P01", "57P02", "57P03", "53300", "40001", "40P01"}
_JDBC_PARAMS = {"ssl": "sslmode", "connecttimeout": "connect_timeout",
                "applicationname": "application_name", "currentschema": "options"}
# libpq's text for logins the server refuses for good (wrong password, unknown role
# or database, pg_hba.conf), which a retry cannot cure
_REFUSED_LOGIN = re.compile(r"authentication failed|no pg_hba\.conf entry|"
                            r"(role|database) \"[^\"]*\" does not exist|permission denied")
T = TypeVar("T")


@runtime_checkable
class ArrowData(Protocol):
    """Rows a transaction writes besides a ``pa.Table``: an unbounded DataFrame."""

    def toArrow(self) -> pa.Table: ...


def _invalid(message: str) -> AnalysisException:
    return AnalysisException(message, error_class="INVALID_OPTION")


@dataclass(frozen=True)
class ConnectionSettings:
    """Where to connect, parsed from Spark's JDBC options; ``repr`` shows no password.

    Example:
        >>> s = ConnectionSettings.parse("jdbc:postgresql://db:6543/shop?ssl=true",
        ...                              "app", "s3cret")
        >>> s.server, s.params["sslmode"], s.redact("login s3cret failed")
        ('db:6543/shop', 'require', 'login *********(redacted) failed')
    """

    params: dict[str, str] = field(repr=False)
    server: str
    retry_timeout_ms: int = 60_000

    @classmethod
    def parse(cls, url: str, user: str | None, password: str | None,
              retry_timeout_ms: int = 60_000) -> ConnectionSettings:
        params = _uri_params(url, password)
        if user:
            params["user"] = user
        if password:
            params["password"] = password
        params.setdefault("connect_timeout", "10")
        params.setdefault("application_name", "unbounded")
        server = (f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
                  f"/{params.get('dbname', params.get('user', ''))}")
        return cls(params, server, retry_timeout_ms)

    @property
    def secrets(self) -> list[str]:
        password = self.params.get("password")
        return [password] if password else []

    def redact(self, text: str) -> str:
        """``text`` with the password masked (server and driver messages may echo it)."""
        return _mask(text, self.secrets)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(make_conninfo("", **self.params), autocommit=True)


def _uri_params(url: str, password: str | None) -> dict[str, str]:
    """libpq parameters from ``jdbc:postgresql://...`` or a ``postgresql://`` URI."""
    raw = url.strip()
    raw = raw[len("jdbc:"):] if raw.lower().startswith("jdbc:") else raw
    if not raw.lower().startswith(("postgresql://", "postgres://")):
        shown = _mask(url, [password])
        raise _invalid(f"Option 'url' must be jdbc:postgresql://host:port/database or a "
                       f"postgresql:// URI, got {shown!r}.")
    parts = urllib.parse.urlsplit(raw)
    query = [_jdbc_param(k, v) for k, v in urllib.parse.parse_qsl(parts.query)]
    raw = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    try:
        return {k: str(v) for k, v in conninfo_to_dict(raw).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        detail = _mask(str(exc), [password, parts.password])
        raise _invalid(f"Option 'url' is not a valid PostgreSQL URI: {detail}") from None


def _mask(text: str, secrets: Sequence[str | None]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _jdbc_param(key: str, value: str) -> tuple[str, str]:
    """A JDBC driver URL parameter as libpq spells it (others pass through)."""
    name = _JDBC_PARAMS.get(key.lower(), key)
    if key.lower() == "ssl":
        value = "require" if value.lower() == "true" else "prefer"
    elif key.lower() == "currentschema":
        value = f"-c search_path={value}"
    return name, value


@dataclass(frozen=True)
class ProgressTable:
    """The table that records, per stream, the last batch id written: format version 1.

    One row per stream: ``(query_id text primary key, batch_id bigint, version smallint,
    updated_at timestamptz)``, e.g. ``('5f0c…', 41, 1, '2026-12-06 10:00:00+00')``: batch
    41 and every batch before it are in the target tables. The row moves in the same
    transaction as the batch's rows, and only forward. A row of another version is
    rejected, so a newer writer's record is never misread.
    """

    name: str
    VERSION = 1

    def create(self, conn: psycopg.Connection[Any]) -> None:
        # another writer may create it at the same moment
        with contextlib.suppress(pg_errors.UniqueViolation, pg_errors.DuplicateTable):
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (query_id TEXT PRIMARY KEY, "
                "batch_id BIGINT NOT NULL, version SMALLINT NOT NULL DEFAULT 1, "
                "updated_at TIMESTAMPTZ NOT NULL DEFAULT now())").format(self._ident()))

    def last_batch(self, conn: psycopg.Connection[Any], app_id: str,
                   lock: bool = False) -> int | None:
        query = sql.SQL("SELECT batch_id, version FROM {} WHERE query_id = %s").format(
            self._ident())
        if lock:
            query = query + sql.SQL(" FOR UPDATE")
        row = conn.execute(query, (app_id,)).fetchone()
        if row is None:
            return None
        if row[1] != self.VERSION:
            raise UnboundedError(
                f"The progress row of {app_id!r} in {self.name} has format version "
                f"{row[1]}; this version of unbounded reads version {self.VERSION}. "
                "Upgrade unbounded.", error_class="POSTGRES_PROGRESS_VERSION")
        return int(row[0])

    def record(self, conn: psycopg.Connection[Any], app_id: str, batch_id: int) -> bool:
        """Move the row to ``batch_id``; False when it already is there or beyond."""
        cur = conn.execute(sql.SQL(
            "INSERT INTO {0} AS p (query_id, batch_id) VALUES (%s, %s) "
            "ON CONFLICT (query_id) DO UPDATE SET batch_id = EXCLUDED.batch_id, "
            "updated_at = now() WHERE p.batch_id < EXCLUDED.batch_id "
            "RETURNING batch_id").format(self._ident()), (app_id, batch_id))
        return cur.fetchone() is not None

    def _ident(self) -> sql.Composable:
        return sql.SQL(self.name)  # verbatim, like Spark's dbtable: may be schema.table


@dataclass(frozen=True)
class TableColumns:
    """A target table's columns: name -> (exact name, type oid)."""

    columns: dict[str, tuple[str, int]]

    def resolve(self, names: Sequence[str], table: str) -> list[tuple[str, int]]:
        """The table column of each name: exact first, then case-insensitive (Spark's
        default); a name the table lacks fails, listing the table's columns."""
        folded = {k.lower(): v for k, v in self.columns.items()}
        out = []
        for name in names:
            found = self.columns.get(name) or folded.get(name.lower())
            if found is None:
                raise AnalysisException(
                    f'Column "{name}" not found in table {table} (its columns: '
                    f"{', '.join(self.columns)}). Select only the table's columns, or add "
                    "the column to the table.", error_class="COLUMN_NOT_FOUND")
            out.append(found)
        return out


class PostgresTransaction:
    """The writes of one batch, inside its transaction. May run again on a retry, so
    ``write_batch``'s function must only act through it (no other side effects)."""

    def __init__(self, conn: psycopg.Connection[Any], known: dict[str, TableColumns]) -> None:
        self._conn = conn
        self._known = known
        self.learned: dict[str, TableColumns] = {}

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection, inside the batch's transaction."""
        return self._conn

    def execute(self, query: Any, params: Any = None) -> psycopg.Cursor[Any]:
        """Run one SQL statement in the batch's transaction."""
        return self._conn.execute(query, params)

    def append(self, data: pa.Table | ArrowData, table: str,
               create_options: str = "") -> int:
        """COPY (binary) the rows into ``table``, created from their schema when missing
        (Spark's JDBC types); returns the number of rows."""
        rows = _arrow(data)
        columns = self._columns(table, rows.schema, (), create_options)
        _copy(self._conn, sql.SQL(table), rows, columns.resolve(rows.column_names, table))
        return int(rows.num_rows)

    def overwrite(self, data: pa.Table | ArrowData, table: str,
                  create_options: str = "") -> int:
        """Replace every row of ``table`` with ``data`` (complete output mode)."""
        rows = _arrow(data)
        self._columns(table, rows.schema, (), create_options)
        self._conn.execute(sql.SQL("TRUNCATE TABLE ONLY {}").format(sql.SQL(table)))
        return self.append(rows, table)

    def upsert(self, data: pa.Table | ArrowData, table: str, keys: Sequence[str],
               create_options: str = "") -> int:
        """Insert rows, or update the row with the same ``keys`` (``INSERT ... ON
        CONFLICT`` from a staged COPY); the last row of a key in ``data`` wins."""
        rows = _arrow(data)
        missing = [k for k in keys if k not in rows.column_names]
        if missing:
            raise AnalysisException(
                f"Upsert keys {missing} are not columns of the rows written to {table} "
                f"({', '.join(rows.column_names)}).", error_class="INVALID_OPTION")
        columns = self._columns(table, rows.schema, tuple(keys), create_options)
        resolved = columns.resolve(rows.column_names, table)
        _check_unique_keys(self._conn, table, [columns.resolve([k], table)[0][0] for k in keys])
        _stage(self._conn, table, rows, resolved)
        self._conn.execute(_upsert_sql(table, [n for n, _ in resolved],
                                       [n for n, _ in columns.resolve(keys, table)]))
        self._conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(_STAGE)))
        return int(rows.num_rows)

    def _columns(self, table: str, schema: pa.Schema, keys: tuple[str, ...],
                 create_options: str) -> TableColumns:
        known = self.learned.get(table) or self._known.get(table)
        if known is None:
            known = _table_columns(self._conn, table)
        if known is None:
            _create_table(self._conn, table, schema, keys, create_options)
            known = _table_columns(self._conn, table)
            assert known is not None
        self.learned[table] = known
        return known


def _arrow(data: pa.Table | ArrowData) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, ArrowData):
        return data.toArrow()
    raise TypeError(f"Expected a pyarrow Table or a DataFrame, got {type(data).__name__}")


def _table_columns(conn: psycopg.Connection[Any], table: str) -> TableColumns | None:
    rows = conn.execute(
        "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,)).fetchall()
    if not rows:
        return None
    return TableColumns({str(name): (str(name), int(oid)) for name, oid in rows})


def _create_table(conn: psycopg.Connection[Any], table: str, schema: pa.Schema,
                  keys: tuple[str, ...], create_options: str) -> None:
    """Spark's JDBC ``createTable``, plus a primary key on the upsert keys."""
    columns = [column_ddl(f) for f in schema]
    if keys:
        columns.append("PRIMARY KEY (" + ", ".join(quote_identifier(k) for k in keys) + ")")
    ddl = f"CREATE TABLE {table} ({', '.join(columns)}) {create_options}".rstrip()
    _log.info("Creating table %s: %s", table, ddl)
    conn.execute(sql.SQL(ddl))


def _copy(conn: psycopg.Connection[Any], target: sql.Composable, rows: pa.Table,
          columns: list[tuple[str, int]]) -> None:
    """``COPY target (columns) FROM STDIN (FORMAT BINARY)``, typed by the columns' oids;
    the stream is built with NumPy when every column has a fixed width."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, names)
    oids = [oid for _, oid in columns]
    stream = encode_binary_copy(rows, oids)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if stream is not None:  # fixed-width columns: laid out at once
            copy.write(stream)
            return
        copy.set_types(oids)
        for row in zip(*(c.to_pylist() for c in rows.columns), strict=True):
            copy.write_row(row)


def _stage(conn: psycopg.Connection[Any], table: str, rows: pa.Table,
           columns: list[tuple[str, int]]) -> None:
    """A temporary table with the target's column types, numbered in arrival order."""
    names = sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns)
    stage = sql.Identifier(_STAGE)
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} "
                         "WITH NO DATA").format(stage, names, sql.SQL(table)))
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} BIGINT GENERATED ALWAYS AS "
                         "IDENTITY").format(stage, sql.Identifier(_STAGE_ROW)))
    _copy(conn, stage, rows, columns)


def _upsert_sql(table: str, names: list[str], keys: list[str]) -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    key_cols = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
               for n in names if n not in keys]
    action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(updates) if updates \
        else sql.SQL("DO NOTHING")
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {stage} "
        "ORDER BY {keys}, {row} DESC ON CONFLICT ({keys}) {action}").format(
        table=sql.SQL(table), cols=cols, keys=key_cols, stage=sql.Identifier(_STAGE),
        row=sql.Identifier(_STAGE_ROW), action=action)


def _check_unique_keys(conn: psycopg.Connection[Any], table: str, keys: list[str]) -> None:
    """ON CONFLICT needs a unique index on exactly the keys; say how to add one."""
    found = conn.execute(
        "SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass(%s) AND i.indisunique "
        "AND i.indpred IS NULL AND (SELECT array_agg(a.attname::text ORDER BY a.attname) "
        "FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) "
        "= (SELECT array_agg(k ORDER BY k) FROM unnest(%s::text[]) AS k)",
        (table, keys)).fetchone()
    if found is None:
        cols = ", ".join(quote_identifier(k) for k in keys)
        raise AnalysisException(
            f"Upsert into {table} needs a primary key or unique index on exactly "
            f"({cols}); the table has none. Add one: CREATE UNIQUE INDEX ON {table} "
            f"({cols}).", error_class="POSTGRES_UPSERT_KEYS")


class _AlreadyWritten(Exception):  # control flow, never escapes
    """The batch is recorded: roll back whatever this attempt did."""


class PostgresBatchWriter:
    """Writes batches exactly once per ``(app_id, batch id)``; see the module docstring.

    Args:
        url: ``jdbc:postgresql://host:port/db`` or a libpq ``postgresql://`` URI.
        user: the login (also accepted inside the URL).
        password: the password; masked in every message.
        app_id: the stream's name in the progress table (the sink uses the query id).
        progress_table: where batch ids are recorded (created when missing).
        retry_timeout_ms: how long lost connections and restarts are retried.
    """

    def __init__(self, url: str, *, app_id: str, user: str | None = None,
                 password: str | None = None, progress_table: str = PROGRESS_TABLE,
                 retry_timeout_ms: int = 60_000) -> None:
        self.settings = ConnectionSettings.parse(url, user, password, retry_timeout_ms)
        self.app_id = app_id
        self.progress = ProgressTable(progress_table)
        self._conn: psycopg.Connection[Any] | None = None
        self._progress_ready = False
        self._tables: dict[str, TableColumns] = {}

    def __repr__(self) -> str:
        return f"PostgresBatchWriter(server={self.settings.server!r}, app_id={self.app_id!r})"

    def last_committed_batch(self) -> int | None:
        """The last batch id recorded for ``app_id`` (None: none yet), read from the
        server."""
        return self._retrying("reading the progress table", self._read_last)

    def write_batch(self, batch_id: int, write: Callable[[PostgresTransaction], object],
                    before_commit: Callable[[], None] | None = None) -> bool:
        """Run ``write`` and record ``batch_id`` in one transaction; False (and nothing
        written) when the batch is already recorded. ``write`` runs again if the
        connection is lost before the commit; ``before_commit`` runs last inside it."""
        return self._retrying(f"writing batch {batch_id}",
                              lambda conn: self._attempt(conn, batch_id, write, before_commit))

    def connect(self) -> None:
        """Open the connection and create the progress table (retried like a batch)."""
        self._retrying("connecting", lambda conn: None)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _read_last(self, conn: psycopg.Connection[Any]) -> int | None:
        return self.progress.last_batch(conn, self.app_id)

    def _attempt(self, conn: psycopg.Connection[Any], batch_id: int,
                 write: Callable[[PostgresTransaction], object],
                 before_commit: Callable[[], None] | None) -> bool:
        tx = PostgresTransaction(conn, self._tables)
        try:
            with conn.transaction():
                last = self.progress.last_batch(conn, self.app_id, lock=True)
                if last is not None and last >= batch_id:
                    raise _AlreadyWritten
                write(tx)
                fault_point("mid-sink-write", batch_id)
                if not self.progress.record(conn, self.app_id, batch_id):
                    raise _AlreadyWritten
                if before_commit is not None:
                    before_commit()
        except _AlreadyWritten:
            _log.info("PostgreSQL: batch %d of %s is already recorded in %s; skipped",
                      batch_id, self.app_id, self.progress.name)
            return False
        self._tables.update(tx.learned)
        return True

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self.settings.connect()
            self._progress_ready = False
        if not self._progress_ready:
            self.progress.create(self._conn)
            self._progress_ready = True
        return self._conn

    def _retrying(self, what: str, call: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``call`` on a live connection; transient failures reconnect and retry with
        backoff (0.1 s doubling to 5 s) until ``retry_timeout_ms`` has passed."""
        deadline = time.monotonic() + self.settings.retry_timeout_ms / 1000
        delay = 0.1
        while True:
            try:
                return call(self._connection())
            except psycopg.Error as exc:
                self._drop_broken(exc)
                if not _transient(exc):
                    raise self._failed(what, exc) from None
                if time.monotonic() + delay > deadline:
                    raise self._unavailable(what, exc) from None
                _log.warning("PostgreSQL server %s: %s failed (%s); retrying in %.1f s",
                             self.settings.server, what, self._detail(exc), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _drop_broken(self, exc: psycopg.Error) -> None:
        if self._conn is not None and (self._conn.broken or _transient(exc)):
            self.close()

    def _detail(self, exc: BaseException) -> str:
        return self.settings.redact(" ".join(str(exc).split()))

    def _failed(self, what: str, exc: psycopg.Error) -> UnboundedError:
        return UnboundedError(
            f"PostgreSQL server {self.settings.server}: {what} failed: {self._detail(exc)}"
            f"{f' (SQLSTATE {exc.sqlstate})' if exc.sqlstate else ''}. Nothing of it was "
            "committed; fix the cause and restart the query, which writes the batch once.",
            error_class="POSTGRES_WRITE_FAILED")

    def _unavailable(self, what: str, exc: psycopg.Error) -> UnboundedError:
        seconds = self.settings.retry_timeout_ms / 1000
        return UnboundedError(
            f"PostgreSQL server {self.settings.server} is unavailable: {what} kept failing "
            f"for {seconds:g} s ({self._detail(exc)}). Nothing of the batch was "
            "committed. Check that the server is up and reachable, or raise option "
            "'retryTimeoutMs'; a restart of the query writes the batch once.",
            error_class="POSTGRES_UNAVAILABLE")


def _transient(exc: psycopg.Error) -> bool:
    """A failure a reconnect may cure: lost or refused connections, a server shutting
    down or starting, too many connections, serialization failures and deadlocks. A
    refused login carries no SQLSTATE (libpq reports it as text) and is not retried."""
    state = exc.sqlstate
    if state is not None:
        return state.startswith("08") or state in _TRANSIENT_STATES
    return isinstance(exc, psycopg.OperationalError) and not _REFUSED_LOGIN.search(str(exc))
