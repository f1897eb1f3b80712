"""Apache Spark as the oracle for spark.sql's grouping analytics (ROLLUP, CUBE, GROUPING
SETS, grouping()/grouping_id()), PIVOT/UNPIVOT, nth_value and window min/max over NaN:
the same views and queries give the same column names, types and rows (and the same error
classes where Spark refuses a query).

Opt-in, because it starts a JVM: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle_grouping_sql.py`` with ``pyspark`` installed
(``pip install -e '.[oracle]'``; Java 17+).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark
from unbounded.errors import AnalysisException
from unbounded.sql import SparkSession

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]

NAN = float("nan")
VIEWS = {
    "g": ([("x", "p", 1), ("x", "q", 2), ("y", "p", 3), ("y", None, 4), (None, "p", 5),
           ("x", "p", 6)], "a STRING, b STRING, c INT"),
    "p": ([("r1", "x", 1, 1.5), ("r1", "y", 2, 2.5), ("r2", "x", 3, None),
           ("r2", "z", 4, 4.5), ("r1", "x", 5, 0.5)], "k STRING, cat STRING, v INT, w DOUBLE"),
    "u": ([(1, 10, None, 30), (2, 20, 21, None), (3, None, None, None)],
          "id INT, q1 INT, q2 INT, q3 BIGINT"),
    "w": ([("a", 1, 10), ("a", 2, None), ("a", 3, 30), ("a", 3, 30), ("a", 4, 40),
           ("b", 1, None), ("b", 2, 7), ("b", 3, 8)], "k STRING, o INT, v INT"),
    "n": ([("a", 1, 1.0), ("a", 2, NAN), ("a", 3, 3.0), ("b", 1, 2.0), ("b", 2, None),
           ("b", 3, -1.0), ("c", 1, NAN), ("c", 2, None)], "k STRING, o INT, d DOUBLE"),
}

GROUPING = [
    "SELECT a, b, sum(c) AS s FROM g GROUP BY ROLLUP(a, b)",
    "SELECT a, b, sum(c), count(*) AS n FROM g GROUP BY CUBE(a, b)",
    "SELECT a, b, sum(c) AS s, grouping(a) AS ga, grouping(b), grouping_id() AS gid, "
    "grouping_id(a, b) FROM g GROUP BY GROUPING SETS ((a, b), (a), ())",
    "SELECT a, b, sum(c) AS s FROM g GROUP BY a, b WITH ROLLUP",
    "SELECT a, b, max(c) AS m FROM g GROUP BY a, b WITH CUBE",
    "SELECT a, b, sum(c) AS s FROM g GROUP BY ROLLUP(a, b) HAVING grouping(b) = 1",
    "SELECT a, sum(c) AS s, grouping_id() AS gid FROM g GROUP BY CUBE(a) HAVING sum(c) > 5 "
    "ORDER BY gid, a",
    "SELECT a, b, sum(c) AS s FROM g GROUP BY a, ROLLUP(b)",
    "SELECT a, sum(c) FROM g GROUP BY GROUPING SETS (a, ())",
    "SELECT upper(a) AS ua, sum(c) FROM g GROUP BY ROLLUP(upper(a))",
    "SELECT a, b, sum(c) AS s FROM g GROUP BY a, b GROUPING SETS ((a, b), (a))",
    "SELECT a, sum(c) AS s FROM g GROUP BY ROLLUP(a) ORDER BY grouping(a), a",
    "SELECT a, b, sum(c) AS s FROM g GROUP BY CUBE(a), CUBE(b)",
    "SELECT a AS x, sum(c) FROM g GROUP BY ROLLUP(x)",
    "SELECT a, sum(c) FROM g GROUP BY ROLLUP(1)",
    "SELECT sum(c) FROM g GROUP BY GROUPING SETS (())",
    "SELECT a, b, grouping__id FROM g GROUP BY CUBE(a, b)",
    "SELECT a, sum(c) AS s FROM g GROUP BY ROLLUP(a, a)",
    "SELECT a, count(*) FROM g GROUP BY a, CUBE(a)",
]
PIVOTS = [
    "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v) FOR cat IN ('x', 'y', 'z'))",
    "SELECT * FROM (SELECT k, cat, v, w FROM p) PIVOT (sum(v) AS s, avg(w) "
    "FOR cat IN ('x' AS ex, 'y'))",
    "SELECT * FROM p PIVOT (sum(v) FOR cat IN ('x', 'y'))",
    "SELECT * FROM p AS t PIVOT (sum(t.v) FOR cat IN ('x'))",
    "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v) FOR cat IN ('x', NULL))",
    "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (count(*) FOR v IN (-4, 1))",
    "SELECT * FROM (SELECT k, cat, v, w FROM p) UNPIVOT (val FOR col IN (v, w)) "
    "PIVOT (sum(val) FOR col IN ('v', 'w'))",
    "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v) AS total FOR cat IN "
    "('x' AS ex, 'y' AS why))",
    "SELECT k, x FROM (SELECT k, cat, v FROM p) PIVOT (count(v) FOR cat IN ('x', 'q')) "
    "ORDER BY k",
    "SELECT * FROM (SELECT k, cat, v, w > 1 AS big FROM p) PIVOT (sum(v) FOR (cat, big) IN "
    "(('x', true) AS xt, ('y', true)))",
    "SELECT * FROM (SELECT cat, v FROM p) PIVOT (count(*) FOR v IN (1, 2, 3))",
    "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v * 2) FOR cat IN ('x', 'y')) AS pv "
    "ORDER BY pv.k",
    "SELECT * FROM (SELECT k, cat, v FROM p) PIVOT (sum(v), max(v) FOR cat IN ('x', 'y'))",
    "SELECT * FROM u UNPIVOT (val FOR quarter IN (q1, q2, q3))",
    "SELECT * FROM u UNPIVOT INCLUDE NULLS (val FOR quarter IN (q1 AS first, q2, q3))",
    "SELECT * FROM u UNPIVOT ((a, b) FOR pair IN ((q1, q2) AS one, (q2, q3)))",
    "SELECT id, quarter, val FROM u UNPIVOT EXCLUDE NULLS (val FOR quarter IN (q1, q2)) "
    "WHERE val > 10 ORDER BY id, quarter",
    "SELECT * FROM u UNPIVOT (val FOR quarter IN (q1, q2)) AS up ORDER BY up.id",
]
WINDOWS = [
    "SELECT k, o, v, nth_value(v, 2) OVER (PARTITION BY k ORDER BY o) AS n2 FROM w",
    "SELECT k, o, v, nth_value(v, 2, true) OVER (PARTITION BY k ORDER BY o) FROM w",
    "SELECT k, o, nth_value(v, 3) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN UNBOUNDED "
    "PRECEDING AND UNBOUNDED FOLLOWING) AS n3 FROM w",
    "SELECT k, o, nth_value(v, 1) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN 1 PRECEDING "
    "AND 1 FOLLOWING) AS n1 FROM w",
    "SELECT k, o, nth_value(v, 2) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN CURRENT ROW "
    "AND UNBOUNDED FOLLOWING) AS n2 FROM w",
    "SELECT k, o, nth_value(v, 2, true) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN 1 "
    "PRECEDING AND 1 FOLLOWING) AS n2 FROM w",
    "SELECT k, o, nth_value(v, 2) OVER (PARTITION BY k ORDER BY o RANGE BETWEEN CURRENT ROW "
    "AND UNBOUNDED FOLLOWING) AS n2 FROM w",
    "SELECT k, o, max(d) OVER (PARTITION BY k ORDER BY o) AS mx, min(d) OVER (PARTITION BY k "
    "ORDER BY o) AS mn, max(d) OVER (PARTITION BY k) AS mxall, min(d) OVER (PARTITION BY k) "
    "AS mnall, max(d) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT "
    "ROW) AS mx2, min(d) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN 1 PRECEDING AND "
    "CURRENT ROW) AS mn2, max(d) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN CURRENT ROW "
    "AND UNBOUNDED FOLLOWING) AS mxf, min(d) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN "
    "CURRENT ROW AND UNBOUNDED FOLLOWING) AS mnf FROM n",
]
ERRORS = [
    "SELECT grouping(a) FROM g GROUP BY a",
    "SELECT a, grouping(b) FROM g GROUP BY ROLLUP(a)",
    "SELECT a, b, grouping_id(a) FROM g GROUP BY CUBE(a, b)",
    "SELECT * FROM (SELECT id, q1, 'a' AS s FROM u) UNPIVOT (val FOR col IN (q1, s))",
    "SELECT nth_value(v, 0) OVER (PARTITION BY k ORDER BY o) FROM w",
    "SELECT nth_value(v, 2) FROM w",
]


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    with started_pyspark("unbounded-oracle-grouping", **{
            "spark.sql.shuffle.partitions": "1",
            "spark.sql.session.timeZone": "UTC",
    }) as session:
        yield session


@pytest.fixture
def both(pyspark_session: Any, spark: SparkSession) -> tuple[Any, SparkSession]:
    for session in (pyspark_session, spark):
        for name, (rows, schema) in VIEWS.items():
            session.createDataFrame(rows, schema).createOrReplaceTempView(name)
    return pyspark_session, spark


def _result(df: Any, ordered: bool) -> tuple[list[str], list[str], list[str]]:
    """Names, types and rows (NaN printed, so it equals itself), sorted unless the query
    orders them."""
    rows = [repr(tuple(r)) for r in df.collect()]
    types = [f.dataType.simpleString() for f in df.schema.fields]
    return df.columns, types, rows if ordered else sorted(rows)


@pytest.mark.parametrize("query", GROUPING + PIVOTS + WINDOWS)
def test_query_matches_spark(both: tuple[Any, SparkSession], query: str) -> None:
    ordered = "ORDER BY" in query.rsplit(")", maxsplit=1)[-1]
    assert _result(both[1].sql(query), ordered) == _result(both[0].sql(query), ordered)


def _error_class(run: Any) -> str:
    try:
        run()
    except Exception as error:
        found = re.search(r"\[([A-Z_.]+)\]", str(error))
        return getattr(error, "error_class", None) or (found.group(1) if found else "")
    return "no error"


@pytest.mark.parametrize("query", ERRORS)
def test_refused_query_has_spark_s_error_class(both: tuple[Any, SparkSession],
                                                query: str) -> None:
    theirs = _error_class(lambda: both[0].sql(query).collect())
    with pytest.raises(AnalysisException):
        both[1].sql(query).collect()
    assert _error_class(lambda: both[1].sql(query).collect()) == theirs


def test_nth_value_column_names_match_spark(both: tuple[Any, SparkSession]) -> None:
    from pyspark.sql import Window as SparkWindow
    from pyspark.sql import functions as SF

    from unbounded.sql import Window
    from unbounded.sql import functions as F

    results = []
    for session, fns, window in ((both[0], SF, SparkWindow), (both[1], F, Window)):
        spec = window.partitionBy("k").orderBy("o")
        df = session.table("w").select("k", "o", fns.nth_value("v", 2).over(spec),
                                       fns.nth_value("v", 2, True).over(spec))
        results.append(_result(df, ordered=False))
    assert results[1] == results[0]


def test_streaming_rollup_matches_spark(both: tuple[Any, SparkSession],
                                        tmp_path: Path) -> None:
    source = tmp_path / "events"
    source.mkdir()
    rows = VIEWS["g"][0]
    (source / "1.json").write_text("".join(
        json.dumps({"a": a, "b": b, "c": c}) + "\n" for a, b, c in rows))
    results = []
    for i, session in enumerate(both):
        stream = session.readStream.schema("a STRING, b STRING, c INT").json(str(source))
        stream.createOrReplaceTempView("events")
        query = (session.sql("SELECT a, b, sum(c) AS s, grouping_id() AS gid FROM events "
                             "GROUP BY CUBE(a, b)")
                 .writeStream.format("memory").queryName(f"cube_{i}").outputMode("complete")
                 .option("checkpointLocation", str(tmp_path / f"cp{i}"))
                 .trigger(availableNow=True).start())
        query.awaitTermination(120)
        results.append(_result(session.table(f"cube_{i}"), ordered=False))
    assert results[1] == results[0]
