"""Parquet -> windowed aggregation -> PostgreSQL table, exactly-once (issue 14).

The query of ``bench/table_sinks.py`` writes through ``writeStream.format("postgresql")``:
each batch one transaction holding its binary COPY and the query's progress row. The
server is a private one on a free loopback port from Debian's ``postgresql`` package
(``unbounded.testing.postgres``, as the tests start it; installed when missing and we
are root with ``apt-get``), started by this workload and stopped by its PID at the end.
Baseline: the same output rows written once by psycopg's binary COPY
(``cursor.copy(...)``, ``set_types``, ``write_row`` per row, as psycopg's documentation
writes it) in one transaction. Aim: the sink's rate at least 0.8x the direct COPY's.
Beside it, the same rows written at once as text: pyarrow's CSV writer, then ``COPY
... (FORMAT CSV)``, the fast direct way that needs no Python per row.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as csv

from bench.harness import BenchContext, Workload, WorkloadResult, stopwatch
from bench.table_sinks import COLUMNS, run_workload

__all__ = ["WORKLOAD", "PostgresTarget", "direct_copy", "run"]

DATABASE = "bench"
_DDL = ("CREATE TABLE {} (window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ NOT "
        "NULL, key BIGINT, count BIGINT NOT NULL, sum DOUBLE PRECISION)")
_COLUMNS = ", ".join(f'"{name}"' for name in COLUMNS)
_TYPES = ["timestamptz", "timestamptz", "int8", "int8", "float8"]


def direct_copy(conn: Any, table: str, rows: pa.Table) -> None:
    """``rows`` into ``table`` by one binary COPY, in the connection's transaction."""
    columns = ", ".join(f'"{name}"' for name in rows.column_names)
    values = [c.to_pylist() for c in rows.columns]
    with conn.cursor() as cur, \
            cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_TYPES)
        for row in zip(*values, strict=True):
            copy.write_row(row)


class PostgresTarget:
    """The PostgreSQL sink and a direct psycopg COPY, on one server's database."""

    name = "postgresql"
    direct_tries = 1  # seconds each

    def __init__(self, url: str, conninfo: str, user: str, password: str) -> None:
        from unbounded.sinks.postgres import PostgresSink

        self.sink_class: type = PostgresSink
        self.url, self.conninfo, self.user, self.password = url, conninfo, user, password

    def start(self, writer: Any, run: int) -> Any:
        return (writer.format("postgresql").option("url", self.url)
                .option("user", self.user).option("password", self.password)
                .option("dbtable", f"sink_{run}").start())

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.conninfo)

    def write_direct(self, rows: pa.Table, run: int) -> float:
        with self._connect() as conn:
            conn.execute(_DDL.format(f"direct_{run}"))
            conn.commit()
            with stopwatch() as elapsed:
                direct_copy(conn, f"direct_{run}", rows)
                conn.commit()
        return elapsed[0]

    second_baseline = "direct COPY (FORMAT CSV) of pyarrow's CSV writer, one-shot"

    def write_second(self, rows: pa.Table, run: int) -> float:
        """The fast direct way without row-by-row Python: Arrow's CSV writer, text COPY."""
        table = f"direct_csv_{run}"
        with self._connect() as conn:
            conn.execute(_DDL.format(table))
            conn.commit()
            with stopwatch() as elapsed:
                text = io.BytesIO()
                # one chunk: pyarrow 26's CSV writer emits NUL bytes for a leading empty one
                csv.write_csv(rows.combine_chunks(), text,
                              csv.WriteOptions(include_header=False))
                with conn.cursor() as cur, \
                        cur.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN (FORMAT CSV)") as copy:
                    copy.write(text.getvalue())
                conn.commit()
        return elapsed[0]

    def write_direct_batches(self, batches: list[pa.Table], run: int) -> list[float]:
        table = f"direct_batches_{run}"
        with self._connect() as conn:
            conn.execute(_DDL.format(table))
            conn.commit()
            seconds = []
            for rows in batches:
                with stopwatch() as elapsed:
                    direct_copy(conn, table, rows)
                    conn.commit()
                seconds.append(elapsed[0])
        return seconds

    def read_back(self, run: int) -> pl.DataFrame:
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM sink_{run}").fetchall()
        return pl.DataFrame(rows, schema=COLUMNS, orient="row")


@contextmanager
def _server() -> Iterator[Any]:
    from unbounded.testing.postgres import server_binaries, start_server

    bin_dir = server_binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/"
                           "bin and not installable here (needs root and apt-get): "
                           "apt-get install postgresql")
    server = start_server(bin_dir)
    try:
        server.create_database(DATABASE)
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.root, ignore_errors=True)


def run(ctx: BenchContext) -> WorkloadResult:
    with _server() as server:
        target = PostgresTarget(server.jdbc_url(DATABASE), server.conninfo(DATABASE),
                                server.user, server.password)
        result = run_workload(ctx, "postgres_sink", lambda run_dir: target)
    result.params["server"] = server.bin_dir
    return result


WORKLOAD = Workload("postgres_sink", "Parquet -> 5 s windows by key -> PostgreSQL (COPY + "
                    "batch id per transaction) vs psycopg COPY", 4_000_000, run)
