"""Apache Spark as the oracle for spark.sql, the catalog and the batch writer: the same
views, the same queries, the same rows and column names.

Opt-in, because it starts a JVM: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle_sql.py`` with ``pyspark`` installed
(``pip install -e '.[oracle]'``; Java 17+).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark
from unbounded.sql import SparkSession

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]


def _at(minute: int) -> dt.datetime:
    return dt.datetime(2024, 1, 1, 0, minute)


ORDERS = ([(1, "a", 10.0, _at(0)), (2, "b", 5.5, _at(3)), (3, "a", None, _at(4)),
           (4, "c", 7.0, _at(9)), (5, "a", 1.0, _at(11)), (6, None, 2.0, _at(12))],
          "id BIGINT, customer STRING, amount DOUBLE, ts TIMESTAMP")
CUSTOMERS = ([("a", "Ann", "FR"), ("b", "Bob", "DE"), ("d", "Dee", "FR")],
             "customer STRING, name STRING, country STRING")

QUERIES = [
    "SELECT customer, count(*) AS n, sum(amount) AS total, avg(amount) FROM orders "
    "GROUP BY customer ORDER BY customer NULLS FIRST",
    "SELECT customer, max(amount) AS top FROM orders GROUP BY customer "
    "HAVING count(*) > 1 OR max(amount) > 6 ORDER BY top DESC",
    "SELECT o.id, c.name, c.country FROM orders o JOIN customers c ON o.customer = c.customer "
    "ORDER BY o.id",
    "SELECT o.id, c.name FROM orders o LEFT JOIN customers c ON o.customer = c.customer "
    "ORDER BY o.id",
    "SELECT c.name, o.id FROM orders o RIGHT JOIN customers c ON o.customer = c.customer "
    "ORDER BY c.name, o.id",
    "SELECT o.id, c.name FROM orders o FULL OUTER JOIN customers c "
    "ON o.customer = c.customer ORDER BY o.id NULLS FIRST, c.name",
    "SELECT * FROM orders LEFT ANTI JOIN customers USING (customer) ORDER BY id",
    "SELECT * FROM customers LEFT SEMI JOIN orders USING (customer) ORDER BY customer",
    "SELECT customer FROM orders UNION SELECT customer FROM customers ORDER BY customer",
    "SELECT customer FROM orders EXCEPT SELECT customer FROM customers",
    "WITH big AS (SELECT * FROM orders WHERE amount > 5) "
    "SELECT country, count(*) AS n FROM big JOIN customers USING (customer) "
    "GROUP BY country ORDER BY country",
    "SELECT t.customer, t.total FROM (SELECT customer, sum(amount) AS total FROM orders "
    "GROUP BY customer) t WHERE t.total > 5 ORDER BY t.total",
    "SELECT id, CASE WHEN amount IS NULL THEN 'none' WHEN amount > 5 THEN 'big' "
    "ELSE 'small' END AS size FROM orders ORDER BY amount DESC NULLS LAST, id LIMIT 4",
    "SELECT DISTINCT customer FROM orders WHERE customer IS NOT NULL ORDER BY customer DESC",
    "SELECT window.start, window.end, count(*) AS n FROM orders "
    "GROUP BY window(ts, '5 minutes') ORDER BY start",
    "SELECT customer, count(*) FROM orders GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT * FROM orders NATURAL JOIN customers ORDER BY id",
    "SELECT id FROM orders WHERE amount > 1 AND customer IN "
    "(SELECT customer FROM customers WHERE country = 'FR') ORDER BY id",
    "SELECT a.id, b.id AS other FROM orders a JOIN orders b ON a.customer = b.customer "
    "AND a.id < b.id ORDER BY a.id, other",
    "SELECT upper(customer) AS c, count(*) AS n FROM orders GROUP BY upper(customer) "
    "ORDER BY c NULLS LAST",
    "SELECT id, customer, row_number() OVER (PARTITION BY customer ORDER BY amount DESC) "
    "AS rn, sum(amount) OVER (PARTITION BY customer ORDER BY id ROWS BETWEEN 1 PRECEDING "
    "AND CURRENT ROW) AS recent, lead(id) OVER (ORDER BY ts) AS next_id FROM orders "
    "ORDER BY id",
    "SELECT customer, sum(amount) AS total, rank() OVER (ORDER BY sum(amount) DESC) AS r "
    "FROM orders GROUP BY customer ORDER BY r, customer",
]


@pytest.fixture(scope="module")
def pyspark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    warehouse = str(tmp_path_factory.mktemp("spark-warehouse"))
    with started_pyspark("unbounded-oracle-sql", **{
            "spark.sql.warehouse.dir": warehouse,
            "spark.sql.shuffle.partitions": "1",
            "spark.sql.session.timeZone": "UTC",
    }) as session:
        yield session


@pytest.fixture
def both(pyspark_session: Any, spark: SparkSession) -> tuple[Any, SparkSession]:
    for session in (pyspark_session, spark):
        session.createDataFrame(*ORDERS).createOrReplaceTempView("orders")
        session.createDataFrame(*CUSTOMERS).createOrReplaceTempView("customers")
    return pyspark_session, spark


def _result(df: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    return df.columns, [tuple(r) for r in df.collect()]


@pytest.mark.parametrize("query", QUERIES)
def test_sql_query_matches_spark(both: tuple[Any, SparkSession], query: str) -> None:
    expected_columns, expected = _result(both[0].sql(query))
    columns, actual = _result(both[1].sql(query))
    assert columns == expected_columns
    if "ORDER BY" not in query:
        expected, actual = sorted(expected, key=repr), sorted(actual, key=repr)
    assert actual == expected


def test_parameters_and_formatting_match_spark(both: tuple[Any, SparkSession]) -> None:
    results = []
    for session in both:
        small = session.table("orders").filter("amount < 6")
        results.append(_result(session.sql(
            "SELECT id, customer FROM {df} WHERE customer = {who} ORDER BY id",
            df=small, who="a")))
        results.append(_result(session.sql(
            "SELECT id FROM orders WHERE amount > :low AND ts < :before ORDER BY id",
            args={"low": 2, "before": dt.datetime(2024, 1, 1, 0, 10)})))
        results.append(_result(session.sql("SELECT ? * 2 AS x, ? AS s", args=[21, "y"])))
    assert results[3:] == results[:3]


def test_list_tables_matches_spark(both: tuple[Any, SparkSession], tmp_path: Path) -> None:
    pyspark_session, spark = both
    spark.conf.set("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
    spark.range(2).write.saveAsTable("zeta_table")
    pyspark_session.range(2).write.saveAsTable("zeta_table")
    try:
        ours = [(t.name, t.namespace, t.tableType, t.isTemporary)
                for t in spark.catalog.listTables()]
        theirs = [(t.name, t.namespace, t.tableType, t.isTemporary)
                  for t in pyspark_session.catalog.listTables()]
        assert ours == theirs
    finally:
        pyspark_session.sql("DROP TABLE IF EXISTS zeta_table")


@pytest.mark.parametrize("statements", [
    ["CREATE TEMP VIEW big AS SELECT * FROM orders WHERE amount > 5", "SHOW TABLES"],
    ["SELECT * FROM VALUES (1, 'a'), (2, 'b') AS v(x, y)"],
    ["CREATE OR REPLACE TEMPORARY VIEW pairs AS SELECT * FROM VALUES (1, 'a') AS v(x, y)",
     "SELECT y, x FROM pairs"],
])
def test_sql_commands_match_spark(both: tuple[Any, SparkSession],
                                  statements: list[str]) -> None:
    results = []
    for session in both:
        for statement in statements[:-1]:
            session.sql(statement)
        results.append(_result(session.sql(statements[-1])))
    assert results[1] == results[0]


@pytest.mark.parametrize("fmt", ["parquet", "orc", "json"])
def test_spark_reads_what_the_batch_writer_wrote(both: tuple[Any, SparkSession],
                                                 tmp_path: Path, fmt: str) -> None:
    pyspark_session, spark = both
    out = str(tmp_path / fmt)
    spark.table("orders").write.partitionBy("customer").format(fmt).save(out)
    theirs = pyspark_session.read.format(fmt).load(out)
    rows = sorted((r.id, r.customer, r.amount) for r in theirs.collect())
    assert rows == sorted((r[0], r[1], r[2]) for r in ORDERS[0])


STREAM_QUERY = ("SELECT window.start AS start, customer, count(*) AS n, sum(amount) AS total "
                "FROM events GROUP BY window(ts, '5 minutes'), customer")


def _run_stream(session: Any, source: str, out: str, checkpoint: str) -> None:
    stream = (session.readStream.schema("id BIGINT, customer STRING, amount DOUBLE, "
                                        "ts TIMESTAMP").json(source))
    stream.withWatermark("ts", "2 minutes").createOrReplaceTempView("events")
    query = (session.sql(STREAM_QUERY).writeStream.format("parquet")
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start(out))
    query.awaitTermination(120)


def test_streaming_window_sql_matches_spark(both: tuple[Any, SparkSession],
                                            tmp_path: Path) -> None:
    source = tmp_path / "events"
    source.mkdir()
    lines = [json.dumps({"id": i, "customer": c, "amount": a,
                         "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ")})
             for i, c, a, ts in ORDERS[0]]
    (source / "a.json").write_text("\n".join(lines) + "\n")
    results = []
    for name, session in zip(("spark", "ours"), both, strict=True):
        out = str(tmp_path / f"out_{name}")
        _run_stream(session, str(source), out, str(tmp_path / f"ck_{name}"))
        results.append(sorted((tuple(r) for r in both[0].read.parquet(out).collect()),
                              key=repr))
    assert results[1] == results[0]
    assert len(results[0]) == 3  # the windows ending by the watermark (12 - 2 minutes)
