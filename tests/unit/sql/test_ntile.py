"""ntile(n) over a window: buckets as Spark's NTile fills them (the first size % n
buckets one row larger), named as PySpark names it."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException
from unbounded.sql import functions as F
from unbounded.sql.window import Window


def test_ntile_buckets_and_name(spark):
    frame = spark.createDataFrame([("a", i) for i in range(1, 8)] + [("b", 1), ("b", 2)],
                                  "k string, v int")
    window = Window.partitionBy("k").orderBy("v")
    out = frame.select("k", "v", F.ntile(3).over(window), F.ntile(1).over(window))
    assert out.columns[2] == ("ntile(3) OVER (PARTITION BY k ORDER BY v ASC NULLS FIRST "
                              "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
    assert sorted(tuple(r) for r in out.collect()) == [  # PySpark 4.3's rows
        ("a", 1, 1, 1), ("a", 2, 1, 1), ("a", 3, 1, 1), ("a", 4, 2, 1), ("a", 5, 2, 1),
        ("a", 6, 3, 1), ("a", 7, 3, 1), ("b", 1, 1, 1), ("b", 2, 2, 1)]


def test_ntile_needs_a_positive_bucket_count(spark):
    frame = spark.createDataFrame([(1,)], "v int")
    with pytest.raises(AnalysisException, match="positive integer"):
        frame.select(F.ntile(0).over(Window.orderBy("v"))).collect()
