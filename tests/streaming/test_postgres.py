"""The postgresql sink and the foreachBatch helper against a real PostgreSQL server.

The server comes from ``postgres_fixtures`` (Debian's package, started on a free
loopback port, installed when missing on CI). Every check of the table is SQL.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import sys
from contextlib import redirect_stdout
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from crash_runs import run_job, run_killed_at
from postgres_fixtures import PASSWORD, PostgresServer
from unbounded.errors import AnalysisException, UnboundedError
from unbounded.sinks.base import MicroBatch, SinkContext
from unbounded.sinks.postgres import PostgresSink
from unbounded.sinks.postgres_batches import PostgresBatchWriter
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream
from unbounded.testing.faults import FAULT_POINTS

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "postgres_job.py")
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sql(server: PostgresServer, db: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _options(server: PostgresServer, db: str, table: str, **extra: str) -> dict[str, str]:
    return {"url": server.jdbc_url(db), "user": "postgres", "password": PASSWORD,
            "dbtable": table, **extra}


def _sink(server: PostgresServer, db: str, table: str, query_id: str = "q-1",
          output_mode: str = "append", **extra: str) -> PostgresSink:
    ctx = SinkContext(query_id, None, _options(server, db, table, **extra), output_mode, None)
    return PostgresSink("postgresql", ctx)


def _batch(batch_id: int, rows: pa.Table) -> MicroBatch:
    return MicroBatch(batch_id, rows.schema, [rows])


def _rows(ids: range, tag: str = "v") -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64()),
                     "name": pa.array([f"{tag}-{i}" for i in ids], pa.string())})


# ------------------------------------------------------------ table creation and types


def test_missing_table_is_created_with_sparks_jdbc_types_and_holds_the_rows(
        spark: SparkSession, postgres_server: PostgresServer, postgres_db: str,
        tmp_path: Any) -> None:
    stream = MemoryStream("id INT, big LONG, small SHORT, tiny BYTE, f FLOAT, d DOUBLE, "
                          "dec DECIMAL(10,2), s STRING, b BOOLEAN, day DATE, "
                          "ts TIMESTAMP, ntz TIMESTAMP_NTZ, bin BINARY, xs ARRAY<INT>", spark)
    stamp = dt.datetime(2026, 12, 6, 10, 30, 0, 123456)
    stream.addData([(1, 2**40, 7, 3, 1.5, 2.25, Decimal("12.34"), "a", True,
                     dt.date(2026, 1, 2), stamp, stamp, b"\x00\x01", [1, None, 3]),
                    (2, None, None, None, None, None, None, None, None, None, None, None,
                     None, None)])
    query = (stream.toDF().writeStream.format("postgresql")
             .options(**_options(postgres_server, postgres_db, "typed"))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    query.processAllAvailable()
    query.stop()
    types = _sql(postgres_server, postgres_db,
                 "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                 "WHERE attrelid = 'typed'::regclass AND attnum > 0 ORDER BY attnum")
    assert types == [("id", "integer"), ("big", "bigint"), ("small", "smallint"),
                     ("tiny", "smallint"), ("f", "real"), ("d", "double precision"),
                     ("dec", "numeric(10,2)"), ("s", "text"), ("b", "boolean"),
                     ("day", "date"), ("ts", "timestamp with time zone"),
                     ("ntz", "timestamp without time zone"), ("bin", "bytea"),
                     ("xs", "integer[]")]
    rows = _sql(postgres_server, postgres_db,
                "SELECT id, big, small, tiny, f, d, dec, s, b, day, ts AT TIME ZONE 'UTC', "
                "ntz, bin, xs FROM typed ORDER BY id")
    assert rows == [(1, 2**40, 7, 3, 1.5, 2.25, Decimal("12.34"), "a", True,
                     dt.date(2026, 1, 2), stamp, stamp, b"\x00\x01", [1, None, 3]),
                    (2, *([None] * 13))]


def test_a_struct_column_has_no_jdbc_type_and_fails_naming_it(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    sink = _sink(postgres_server, postgres_db, "nested")
    rows = pa.table({"id": [1], "point": [{"x": 1, "y": 2}]})
    with pytest.raises(AnalysisException, match=r"Can't get JDBC type for struct<x:bigint,"
                                                r"y:bigint> \(column 'point'\)"):
        sink.add_batch(0, _batch(0, rows))
    assert _sql(postgres_server, postgres_db, "SELECT to_regclass('nested')") == [(None,)]
    sink.stop()


def test_rows_go_into_an_existing_table_by_column_name_case_insensitively(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    _sql_exec(postgres_server, postgres_db,
              "CREATE TABLE existing (name TEXT, id BIGINT, note TEXT DEFAULT 'none')")
    sink = _sink(postgres_server, postgres_db, "existing")
    sink.add_batch(0, _batch(0, pa.table({"ID": [1, 2], "Name": ["a", "b"]})))
    assert _sql(postgres_server, postgres_db, "SELECT * FROM existing ORDER BY id") == [
        ("a", 1, "none"), ("b", 2, "none")]
    with pytest.raises(AnalysisException, match='Column "extra" not found in table existing'):
        sink.add_batch(1, _batch(1, pa.table({"id": [3], "extra": ["x"]})))
    sink.stop()


def test_fixed_width_columns_with_nulls_land_exactly_through_the_numpy_copy(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    # every column fixed-width: the COPY stream is laid out by postgres_copy, not row by row
    _sql_exec(postgres_server, postgres_db,
              "CREATE TABLE fixed (id INTEGER, n BIGINT, f REAL, d DOUBLE PRECISION, "
              "b BOOLEAN, day DATE, ts TIMESTAMPTZ, ntz TIMESTAMP, s SMALLINT)")
    utc = dt.UTC
    rows = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "n": pa.array([-(2**40), None, 0], pa.int64()),
        "f": pa.array([1.5, None, -0.25], pa.float32()),
        "d": pa.array([None, 2.125, float("-inf")], pa.float64()),
        "b": pa.array([True, None, False]),
        "day": pa.array([dt.date(1999, 12, 31), dt.date(2026, 12, 7), None]),
        "ts": pa.array([dt.datetime(1969, 7, 20, 20, 17, 40, 5, tzinfo=utc), None,
                        dt.datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=utc)],
                       pa.timestamp("us", tz="UTC")),
        "ntz": pa.array([None, dt.datetime(2000, 1, 1), dt.datetime(1900, 3, 1, 0, 0, 1)],
                        pa.timestamp("ms")),
        "s": pa.array([7, -8, None], pa.int16()),
    })
    sink = _sink(postgres_server, postgres_db, "fixed")
    sink.add_batch(0, _batch(0, rows))
    sink.stop()
    assert _sql(postgres_server, postgres_db, "SELECT * FROM fixed ORDER BY id") == [
        (1, -(2**40), 1.5, None, True, dt.date(1999, 12, 31),
         dt.datetime(1969, 7, 20, 20, 17, 40, 5, tzinfo=utc), None, 7),
        (2, None, None, 2.125, None, dt.date(2026, 12, 7), None, dt.datetime(2000, 1, 1),
         -8),
        (3, 0, -0.25, float("-inf"), False, None,
         dt.datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=utc),
         dt.datetime(1900, 3, 1, 0, 0, 1), None)]


def test_a_long_out_of_an_integer_columns_range_fails_the_batch_committing_nothing(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    _sql_exec(postgres_server, postgres_db, "CREATE TABLE narrow (id INTEGER)")
    sink = _sink(postgres_server, postgres_db, "narrow")
    with pytest.raises(UnboundedError, match="Column 'id' holds a value that does not fit"):
        sink.add_batch(0, _batch(0, pa.table({"id": pa.array([1, 2**40], pa.int64())})))
    sink.stop()
    assert _sql(postgres_server, postgres_db, "SELECT count(*) FROM narrow") == [(0,)]
    assert _sql(postgres_server, postgres_db,
                "SELECT count(*) FROM unbounded_sink_progress") == [(0,)]


def _sql_exec(server: PostgresServer, db: str, statement: str) -> None:
    with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


# ------------------------------------------------------------ idempotence per batch id


def test_a_re_run_batch_already_recorded_is_skipped_even_by_a_new_sink(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    sink = _sink(postgres_server, postgres_db, "events")
    sink.add_batch(0, _batch(0, _rows(range(3))))
    sink.add_batch(0, _batch(0, _rows(range(3), "again")))
    sink.add_batch(1, _batch(1, _rows(range(3, 5))))
    sink.stop()
    restarted = _sink(postgres_server, postgres_db, "events")
    assert restarted.last_committed_batch() == 1
    restarted.add_batch(1, _batch(1, _rows(range(3, 5), "again")))
    restarted.add_batch(2, _batch(2, _rows(range(5, 6))))
    assert _sql(postgres_server, postgres_db, "SELECT id, name FROM events ORDER BY id") == [
        (i, f"v-{i}") for i in range(6)]
    assert _sql(postgres_server, postgres_db,
                "SELECT query_id, batch_id, version FROM unbounded_sink_progress") == [
        ("q-1", 2, 1)]
    other = _sink(postgres_server, postgres_db, "events", query_id="q-2")
    assert other.last_committed_batch() is None
    restarted.stop()
    other.stop()


def test_a_database_restored_without_the_last_batch_gets_it_again_at_restart(
        spark: SparkSession, postgres_server: PostgresServer, postgres_db: str,
        tmp_path: Any) -> None:
    stream = MemoryStream("id LONG, name STRING", spark)

    def start() -> Any:
        return (stream.toDF().writeStream.format("postgresql")
                .options(**_options(postgres_server, postgres_db, "restored"))
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    query = start()
    for first in (0, 2):
        stream.addData([(first, "a"), (first + 1, "b")])
        query.processAllAvailable()
    query.stop()
    _sql_exec(postgres_server, postgres_db, "DELETE FROM restored WHERE id >= 2; "
              "UPDATE unbounded_sink_progress SET batch_id = 0")  # a backup before batch 1
    query = start()
    query.processAllAvailable()
    query.stop()
    assert _sql(postgres_server, postgres_db, "SELECT id, name FROM restored ORDER BY id") == [
        (0, "a"), (1, "b"), (2, "a"), (3, "b")]
    assert _sql(postgres_server, postgres_db,
                "SELECT batch_id FROM unbounded_sink_progress") == [(1,)]


def test_an_empty_batch_is_recorded_too(postgres_server: PostgresServer,
                                        postgres_db: str) -> None:
    sink = _sink(postgres_server, postgres_db, "empty_batches")
    sink.add_batch(0, MicroBatch(0, _rows(range(0)).schema, []))
    assert sink.last_committed_batch() == 0
    assert _sql(postgres_server, postgres_db, "SELECT count(*) FROM empty_batches") == [(0,)]
    sink.stop()


# ------------------------------------------------------------ upsert


def test_upsert_inserts_new_keys_and_updates_existing_ones_last_row_wins(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    sink = _sink(postgres_server, postgres_db, "latest", mode="upsert", upsertKeys="id")
    sink.add_batch(0, _batch(0, _rows(range(3))))
    sink.add_batch(1, _batch(1, pa.table({"id": [2, 3, 3], "name": ["b1", "c1", "c2"]})))
    sink.add_batch(1, _batch(1, pa.table({"id": [0], "name": ["replayed"]})))
    assert _sql(postgres_server, postgres_db, "SELECT id, name FROM latest ORDER BY id") == [
        (0, "v-0"), (1, "v-1"), (2, "b1"), (3, "c2")]
    assert _sql(postgres_server, postgres_db,
                "SELECT count(*) FROM pg_index WHERE indrelid = 'latest'::regclass "
                "AND indisprimary") == [(1,)]
    sink.stop()


def test_update_mode_aggregation_upserts_the_running_counts(
        spark: SparkSession, postgres_server: PostgresServer, postgres_db: str,
        tmp_path: Any) -> None:
    stream = MemoryStream("word STRING", spark)
    counts = stream.toDF().groupBy("word").agg(F.count("*").alias("n"))
    query = (counts.writeStream.format("postgresql").outputMode("update")
             .options(**_options(postgres_server, postgres_db, "word_counts",
                                 mode="upsert", upsertKeys="word"))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([("a",), ("b",), ("a",)])
    query.processAllAvailable()
    stream.addData([("a",), ("c",)])
    query.processAllAvailable()
    query.stop()
    assert _sql(postgres_server, postgres_db, "SELECT word, n FROM word_counts ORDER BY word"
                ) == [("a", 3), ("b", 1), ("c", 1)]


def test_upsert_into_a_table_without_a_unique_key_fails_saying_how_to_add_one(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    _sql_exec(postgres_server, postgres_db, "CREATE TABLE loose (id BIGINT, name TEXT)")
    sink = _sink(postgres_server, postgres_db, "loose", mode="upsert", upsertKeys="id")
    with pytest.raises(AnalysisException, match=r'CREATE UNIQUE INDEX ON loose \("id"\)'):
        sink.add_batch(0, _batch(0, _rows(range(2))))
    assert sink.last_committed_batch() is None
    sink.stop()


@pytest.mark.parametrize(("options", "mode", "message"), [
    ({"mode": "merge"}, "append", "Option 'mode' must be 'append' or 'upsert'"),
    ({"mode": "upsert"}, "append", "Option 'upsertKeys' is required"),
    ({"upsertKeys": "id"}, "append", "applies to mode 'upsert' only"),
    ({}, "update", "cannot apply update output mode by appending"),
    ({"url": "mysql://h/db"}, "append", "must be jdbc:postgresql://host:port/database"),
    ({"dbtable": ""}, "append", "Option 'dbtable' is required"),
])
def test_bad_options_fail_before_the_query_starts(options: dict[str, str], mode: str,
                                                  message: str) -> None:
    base = {"url": "jdbc:postgresql://127.0.0.1:1/db", "dbtable": "t", "password": PASSWORD}
    ctx = SinkContext("q", None, {**base, **options}, mode, None)
    with pytest.raises(AnalysisException, match=message) as caught:
        PostgresSink("postgresql", ctx)
    assert PASSWORD not in str(caught.value)


def test_a_constraint_violation_fails_the_batch_at_once_and_commits_nothing(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    _sql_exec(postgres_server, postgres_db, "CREATE TABLE keyed (id BIGINT PRIMARY KEY, "
              "name TEXT)")
    sink = _sink(postgres_server, postgres_db, "keyed", retryTimeoutMs="30000")
    sink.add_batch(0, _batch(0, _rows(range(2))))
    with pytest.raises(UnboundedError, match=r"writing batch 1 failed: duplicate key value "
                                             r".* \(SQLSTATE 23505\)") as caught:
        sink.add_batch(1, _batch(1, _rows(range(1, 4))))
    assert caught.value.error_class == "POSTGRES_WRITE_FAILED"
    assert _sql(postgres_server, postgres_db, "SELECT id FROM keyed ORDER BY id") == [(0,), (1,)]
    assert sink.last_committed_batch() == 0
    sink.stop()


def test_complete_mode_replaces_the_tables_rows_each_batch(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    sink = _sink(postgres_server, postgres_db, "totals", output_mode="complete")
    sink.add_batch(0, _batch(0, _rows(range(3))))
    sink.add_batch(1, _batch(1, _rows(range(2), "w")))
    assert _sql(postgres_server, postgres_db, "SELECT id, name FROM totals ORDER BY id") == [
        (0, "w-0"), (1, "w-1")]
    sink.stop()


# ------------------------------------------------------------ SIGKILL at each step


def write_inputs(folder: str, files: int, per_file: int) -> list[tuple[int, str, float]]:
    """JSON files of rows ``id, name, amount``; returns every row written."""
    os.makedirs(folder, exist_ok=True)
    rows = []
    for f in range(files):
        chunk = [(n, f"name-{n}", n / 4) for n in range(f * per_file, (f + 1) * per_file)]
        with open(os.path.join(folder, f"rows-{f:03d}.json"), "w") as out:
            out.writelines(json.dumps({"id": i, "name": s, "amount": a}) + "\n"
                           for i, s, a in chunk)
        rows.extend(chunk)
    return rows


@pytest.fixture
def job(tmp_path: Any, postgres_server: PostgresServer, postgres_db: str,
        python_env: dict[str, str]) -> dict[str, Any]:
    rows = write_inputs(str(tmp_path / "input"), files=3, per_file=40)
    cmd = [sys.executable, JOB, "--input", str(tmp_path / "input"),
           "--checkpoint", str(tmp_path / "cp"), "--url", postgres_server.jdbc_url(postgres_db),
           "--password", PASSWORD, "--table", "crash_out"]
    env = {**python_env, "PYTHONPATH": TESTS + os.pathsep + python_env["PYTHONPATH"]}
    return {"cmd": cmd, "env": env, "rows": rows, "db": postgres_db}


def _assert_each_row_once(server: PostgresServer, db: str,
                          rows: list[tuple[int, str, float]]) -> None:
    held = _sql(server, db, "SELECT id, name, amount FROM crash_out ORDER BY id")
    assert held == sorted(rows)
    assert _sql(server, db, "SELECT count(*) - count(DISTINCT id) FROM crash_out") == [(0,)]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_at_each_batch_step_then_restart_writes_each_row_once(
        job: dict[str, Any], postgres_server: PostgresServer, point: str) -> None:
    run_killed_at(job["cmd"], job["env"], point, 1)
    recorded = _sql(postgres_server, job["db"],
                    "SELECT batch_id FROM unbounded_sink_progress")
    sink_done = point in ("after-sink", "before-commit-write", "after-commit-write")
    assert recorded == [(1 if sink_done else 0,)]
    finished = run_job(job["cmd"], job["env"])
    assert finished.returncode == 0, finished.stderr
    _assert_each_row_once(postgres_server, job["db"], job["rows"])
    assert _sql(postgres_server, job["db"],
                "SELECT batch_id FROM unbounded_sink_progress") == [(2,)]


def test_upsert_job_killed_mid_write_then_restarted_holds_each_key_once(
        job: dict[str, Any], postgres_server: PostgresServer) -> None:
    cmd = [*job["cmd"], "--mode", "upsert"]
    run_killed_at(cmd, job["env"], "mid-sink-write", 2)
    assert run_job(cmd, job["env"]).returncode == 0
    _assert_each_row_once(postgres_server, job["db"], job["rows"])


# ------------------------------------------------------------ lost connections, restarts


def _writer(server: PostgresServer, db: str, **extra: Any) -> PostgresBatchWriter:
    return PostgresBatchWriter(server.jdbc_url(db), user="postgres", password=PASSWORD,
                               app_id="restarts", **extra)


def test_server_restart_mid_batch_is_retried_and_the_batch_lands_once(
        postgres_server: PostgresServer, postgres_db: str,
        caplog: pytest.LogCaptureFixture) -> None:
    writer = _writer(postgres_server, postgres_db)
    attempts = []

    def write(tx: Any) -> None:
        tx.append(_rows(range(10 * len(attempts), 10 * len(attempts) + 10)), "restarted")
        attempts.append(1)
        if len(attempts) == 1:
            postgres_server.restart()  # the COPY is done, the COMMIT will find no server

    with caplog.at_level(logging.WARNING):
        assert writer.write_batch(0, write)
    assert len(attempts) == 2
    assert _sql(postgres_server, postgres_db, "SELECT min(id), max(id), count(*) FROM "
                "restarted") == [(10, 19, 10)]
    assert "retrying" in caplog.text
    assert writer.write_batch(1, lambda tx: tx.append(_rows(range(20, 21)), "restarted"))
    writer.close()


def test_a_connection_cut_mid_batch_is_retried_and_the_batch_lands_once(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    writer = _writer(postgres_server, postgres_db)
    attempts = []

    def write(tx: Any) -> None:
        attempts.append(tx.execute("SELECT pg_backend_pid()").fetchone()[0])
        tx.append(_rows(range(5)), "cut")
        if len(attempts) == 1:
            _sql(postgres_server, postgres_db, "SELECT pg_terminate_backend(%s)",
                 (attempts[0],))

    assert writer.write_batch(0, write)
    assert len(attempts) == 2 and attempts[0] != attempts[1]
    assert _sql(postgres_server, postgres_db, "SELECT count(*) FROM cut") == [(5,)]
    writer.close()


def test_a_server_that_stays_down_fails_naming_it_without_the_password(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    writer = PostgresBatchWriter(f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/{postgres_db}",
                                 app_id="down", retry_timeout_ms=600)
    with pytest.raises(UnboundedError) as caught:
        writer.write_batch(0, lambda tx: tx.append(_rows(range(1)), "never"))
    assert caught.value.error_class == "POSTGRES_UNAVAILABLE"
    assert f"PostgreSQL server 127.0.0.1:1/{postgres_db} is unavailable" in str(caught.value)
    assert PASSWORD not in str(caught.value) and "retryTimeoutMs" in str(caught.value)


def test_a_wrong_password_fails_at_once_without_echoing_it(
        postgres_server: PostgresServer, postgres_db: str) -> None:
    wrong = "not-the-pw-91c2"
    writer = PostgresBatchWriter(postgres_server.jdbc_url(postgres_db), user="postgres",
                                 password=wrong, app_id="x", retry_timeout_ms=30_000)
    with pytest.raises(UnboundedError, match="password authentication failed") as caught:
        writer.connect()
    assert caught.value.error_class == "POSTGRES_WRITE_FAILED"
    assert wrong not in str(caught.value)
    assert 'PostgreSQL server 127.0.0.1:' in str(caught.value)


# ------------------------------------------------------------ secrets


def test_the_password_reaches_the_server_but_no_log_progress_plan_or_error(
        spark: SparkSession, postgres_server: PostgresServer, postgres_db: str,
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    stream = MemoryStream("id LONG, name STRING", spark)
    stream.addData([(1, "a"), (2, "b")])
    frame = stream.toDF()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{postgres_server.port}/{postgres_db}"
    shown = io.StringIO()
    with caplog.at_level(logging.DEBUG), redirect_stdout(shown):
        query = (frame.writeStream.format("postgresql").option("url", url)
                 .option("dbtable", "secret_rows")
                 .option("checkpointLocation", str(tmp_path / "cp")).start())
        query.processAllAvailable()
        query.explain(True)
        frame.explain(True)
        query.stop()
        failing = (frame.writeStream.format("postgresql").option("url", url)
                   .option("dbtable", "secret_rows").option("password", "wrong-" + PASSWORD)
                   .option("checkpointLocation", str(tmp_path / "cp2")).start())
        with pytest.raises(Exception) as caught:  # the query's error
            failing.awaitTermination(60)
    assert _sql(postgres_server, postgres_db, "SELECT id, name FROM secret_rows ORDER BY id"
                ) == [(1, "a"), (2, "b")]
    progress = json.dumps([p.json for p in query.recentProgress])
    assert "PostgresSink[table=secret_rows" in progress
    texts = {"logs": caplog.text, "explain": shown.getvalue(), "progress": progress,
             "error": str(caught.value), "status": json.dumps(query.status)}
    assert "password authentication failed" in texts["error"]
    for where, text in texts.items():
        assert PASSWORD not in text, f"the password appears in the {where}"


# ------------------------------------------------------------ the foreachBatch helper


def test_foreach_batch_helper_writes_each_batch_once_across_a_replay(
        spark: SparkSession, postgres_server: PostgresServer, postgres_db: str,
        tmp_path: Any) -> None:
    writer = PostgresBatchWriter(postgres_server.jdbc_url(postgres_db), user="postgres",
                                 password=PASSWORD, app_id="orders-to-pg")
    seen: list[tuple[int, bool]] = []

    def write(df: Any, batch_id: int) -> None:
        def both(tx: Any) -> None:
            tx.append(df, "orders")
            tx.execute("INSERT INTO audit VALUES (%s)", (batch_id,))

        seen.append((batch_id, writer.write_batch(batch_id, both)))

    _sql_exec(postgres_server, postgres_db, "CREATE TABLE audit (batch BIGINT)")
    stream = MemoryStream("id LONG, name STRING", spark)
    query = (stream.toDF().writeStream.foreachBatch(write)
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([(1, "a"), (2, "b")])
    query.processAllAvailable()
    stream.addData([(3, "c")])
    query.processAllAvailable()
    query.stop()
    frame = spark.createDataFrame([(9, "replayed")], "id LONG, name STRING")
    write(frame, 1)  # what a restart does with an uncommitted batch 1
    assert seen == [(0, True), (1, True), (1, False)]
    assert _sql(postgres_server, postgres_db, "SELECT id, name FROM orders ORDER BY id") == [
        (1, "a"), (2, "b"), (3, "c")]
    assert _sql(postgres_server, postgres_db, "SELECT batch FROM audit ORDER BY 1") == [
        (0,), (1,)]
    writer.close()
