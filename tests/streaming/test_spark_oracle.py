"""Apache Spark as the oracle: it reads our file sink's output, and it evaluates the same
expressions on the same rows.

Opt-in, because it starts a JVM: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle.py`` with ``pyspark`` installed
(``pip install -e '.[oracle]'``; Java 17+). The PySpark session runs with
``spark.sql.ansi.enabled=false``: unbounded implements Spark's non-ANSI semantics (CAST of
a bad value gives NULL), while Spark 4 turns ANSI mode on by default.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.files.manifest import FileSinkManifest
from unbounded.files.paths import local_path
from unbounded.sql import SparkSession
from unbounded.sql import functions as F

if os.environ.get("UNBOUNDED_SPARK_ORACLE") != "1":
    pytest.skip("Spark oracle tests are opt-in: set UNBOUNDED_SPARK_ORACLE=1 (needs pyspark "
                "and Java 17+)", allow_module_level=True)
pytest.importorskip("pyspark", reason="UNBOUNDED_SPARK_ORACLE=1 but pyspark is not "
                                      "installed: pip install -e '.[oracle]'")

# PySpark itself warns (pandas >= 3 support, py4j sockets closed late); not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

EVENT_SCHEMA = "id LONG, kind STRING, amount DOUBLE, ts STRING"


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    from pyspark.sql import SparkSession as PySparkSession

    session = (PySparkSession.builder.master("local[1]").appName("unbounded-oracle")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.ansi.enabled", "false")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _write_events(folder: str, files: int, per_file: int) -> list[dict[str, Any]]:
    os.makedirs(folder)
    events: list[dict[str, Any]] = []
    for f in range(files):
        rows = [{"id": f * per_file + i, "kind": ["click", "view", "noise"][i % 3],
                 "amount": (f * per_file + i) / 4, "ts": f"2026-11-25 10:00:{i % 60:02d}"}
                for i in range(per_file)]
        with open(os.path.join(folder, f"events-{f:03d}.json"), "w") as out:
            out.write("".join(json.dumps(r) + "\n" for r in rows))
        events.extend(rows)
    return events


def _run_file_pipeline(spark: SparkSession, input_dir: str, output_dir: str,
                       checkpoint: str) -> None:
    events = spark.readStream.schema(EVENT_SCHEMA).option("maxFilesPerTrigger", 1) \
        .json(input_dir)
    query = (events.where(F.col("kind") != "noise")
             .select("id", F.upper("kind").alias("kind"),
                     (F.col("amount") * 2).alias("double_amount"))
             .writeStream.format("parquet").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(output_dir))
    query.awaitTermination()
    assert query.exception() is None


def _add_orphan_file(output_dir: str) -> str:
    """A Parquet file as a batch killed before its manifest entry would leave behind."""
    committed = FileSinkManifest(output_dir).all_files()
    template = pq.read_table(local_path(committed[0]))
    orphan = os.path.join(output_dir, "part-00000-orphan-of-a-killed-batch.c000.snappy.parquet")
    pq.write_table(pa.Table.from_pylist([{"id": -1, "kind": "ORPHAN", "double_amount": -1.0}],
                                        schema=template.schema), orphan)
    return orphan


def test_spark_reads_exactly_the_rows_our_file_sink_committed(tmp_path, pyspark_session):
    spark = SparkSession.builder.appName("oracle").create()
    input_dir, output_dir = str(tmp_path / "in"), str(tmp_path / "out")
    # 12 batches: the manifest holds a compact file (9.compact) and entries after it.
    events = _write_events(input_dir, files=12, per_file=50)
    _run_file_pipeline(spark, input_dir, output_dir, str(tmp_path / "ckpt"))
    assert os.path.exists(os.path.join(output_dir, "_spark_metadata", "9.compact"))
    _add_orphan_file(output_dir)
    expected = sorted((e["id"], e["kind"].upper(), e["amount"] * 2)
                      for e in events if e["kind"] != "noise")

    seen_by_spark = sorted(tuple(r) for r in pyspark_session.read.parquet(output_dir)
                           .select("id", "kind", "double_amount").collect())
    seen_by_us = sorted(tuple(r) for r in spark.read.parquet(output_dir)
                        .select("id", "kind", "double_amount").collect())

    assert seen_by_spark == expected
    assert seen_by_us == expected
    spark.stop()


# ---- batch expressions: the same rows, the same SQL, both engines ---------------------
ROWS_SCHEMA = "id LONG, s STRING, d DOUBLE, ts_s STRING, js STRING"
ROWS = [
    (1, " Hello World ", 1.5, "2026-01-02 03:04:05", '{"a": 1, "b": {"c": "x"}, "arr": [1, 2, 3]}'),
    (2, "abc", -2.5, "2026-12-31 23:59:59.123456", '{"a": "str", "b": {"c": 7}}'),
    (3, "12", 0.0, "1999-07-04 12:00:00", "not json"),
    (4, None, None, None, None),
    (5, "", 2.5, "2024-02-29 00:00:00.5", '{"a": null, "arr": []}'),
    (6, "ÄÖü straße", 1e10, "1970-01-01 00:00:00", '{"a": 1.5, "b": null}'),
    (7, "2147483648", -0.5, "2026-06-15 18:30:00", '{"b": {"c": "y", "d": 1}, "arr": [4]}'),
    (8, " -7 ", 123456789.125, "bad timestamp", "[1, 2]"),
    (9, "3.9", float("nan"), "2026-03-08 09:05:07", '{"a": true}'),
    (10, "1e3", -1e-4, "2026-11-25T10:00:00", '{"a": "12", "arr": [1, "x"]}'),
]
TS = "CAST(ts_s AS TIMESTAMP)"

EXPRESSIONS = [
    # CAST
    "CAST(s AS INT)", "CAST(s AS LONG)", "CAST(s AS DOUBLE)", "CAST(s AS BOOLEAN)",
    "CAST(d AS INT)", "CAST(d AS LONG)", "CAST(d AS STRING)", "CAST(id AS STRING)",
    "CAST(id AS DOUBLE)", f"CAST({TS} AS STRING)", f"CAST({TS} AS DATE)",
    f"CAST({TS} AS LONG)", "CAST(CAST(ts_s AS DATE) AS STRING)",
    # CASE
    "CASE WHEN d > 1 THEN 'big' WHEN d < 0 THEN 'negative' ELSE 'other' END",
    "CASE id WHEN 1 THEN 'one' WHEN 2 THEN 'two' END",
    "CASE WHEN s IS NULL THEN -1 WHEN length(s) > 3 THEN 1 ELSE 0 END",
    # strings
    "upper(s)", "lower(s)", "length(s)", "trim(s)", "ltrim(s)", "rtrim(s)",
    "substr(s, 2, 3)", "substr(s, -3)", "substring(s, 0, 2)", "concat(s, '-', id)",
    "concat_ws('|', s, 'x', NULL)", "split(s, ' ')", "regexp_replace(s, 'l+', 'L')",
    "regexp_extract(s, '([a-z]+)', 1)", "instr(s, 'l')", "lpad(s, 6, '*')",
    "rpad(s, 6, '*')", "initcap(s)", "reverse(s)", "s LIKE '%l%'",
    # date_format
    f"date_format({TS}, 'yyyy-MM-dd HH:mm:ss')",
    f"date_format({TS}, 'yyyy-MM-dd''T''HH:mm:ss.SSS')",
    f"date_format({TS}, 'EEE, d MMM yyyy')", f"date_format({TS}, 'EEEE MMMM')",
    f"date_format({TS}, 'h:mm a')", f"date_format({TS}, 'yy/M/d H:m:s')",
    f"date_format({TS}, 'D')", f"date_format({TS}, 'SSSSSS')",
    # JSON
    "from_json(js, 'a INT, b STRUCT<c: STRING>')", "from_json(js, 'a DOUBLE')",
    "from_json(js, 'a STRING')", "from_json(js, 'arr ARRAY<INT>')",
    "get_json_object(js, '$.a')", "get_json_object(js, '$.b.c')",
    "get_json_object(js, '$.b')", "get_json_object(js, '$.arr')",
    "get_json_object(js, '$.arr[1]')", "get_json_object(js, '$[0]')",
]

# Differences found by this suite and not fixed yet (xfail is strict: a fix flips them).
KNOWN_DIFFERENCES = {
    "CAST(s AS INT)": "'1e3' casts to 1000; Spark gives NULL (no exponent in integral casts)",
    "CAST(s AS LONG)": "'1e3' casts to 1000; Spark gives NULL (no exponent in integral casts)",
    "CAST(s AS DOUBLE)": "' -7 ' gives NULL; Spark trims whitespace and gives -7.0",
    "CAST(d AS INT)": "1e10 and NaN give NULL; Spark saturates to 2147483647 and maps NaN to 0",
    "CAST(d AS LONG)": "NaN gives NULL; Spark gives 0",
    "CAST(d AS STRING)": "plain decimals; Spark uses Java's Double.toString (1.0E10, -1.0E-4)",
    "instr(s, 'l')": "NULL input gives 0; Spark gives NULL",
    "lpad(s, 6, '*')": "a longer string is returned whole; Spark truncates it to the length",
    "rpad(s, 6, '*')": "a longer string is returned whole; Spark truncates it to the length",
    "initcap(s)": "'1e3' gives '1E3' (digits split words); Spark splits on spaces only: '1e3'",
    f"date_format({TS}, 'yyyy-MM-dd''T''HH:mm:ss.SSS')":
        "the SQL parser reads '' inside a literal as two literals; Spark reads a quote",
    f"date_format({TS}, 'D')": "pattern letter D (day of year) is not supported",
}


def _cases() -> list[Any]:
    return [pytest.param(e, marks=pytest.mark.xfail(reason=KNOWN_DIFFERENCES[e], strict=True))
            if e in KNOWN_DIFFERENCES else e for e in EXPRESSIONS]


def _plain(value: Any) -> Any:
    """Rows, dicts and lists as plain Python values; NaN made comparable."""
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict(recursive=True).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


@pytest.fixture(scope="module")
def frames(pyspark_session) -> tuple[Any, Any]:
    ours = SparkSession.builder.appName("oracle-expr").create()
    return ours.createDataFrame(ROWS, ROWS_SCHEMA), pyspark_session.createDataFrame(
        ROWS, ROWS_SCHEMA)


@pytest.mark.parametrize("expression", _cases())
def test_batch_expression_matches_spark(frames, expression):
    ours, theirs = frames
    want = {r[0]: _plain(r[1]) for r in theirs.selectExpr("id", f"{expression} AS v").collect()}
    got = {r["id"]: _plain(r["v"])
           for r in ours.selectExpr("id", f"{expression} AS v").toArrow().to_pylist()}
    differing = {i: (got.get(i), want[i]) for i in want if got.get(i) != want[i]}
    assert not differing, f"{expression}: id -> (unbounded, spark): {differing}"
