"""``spark.sparkContext``, ``show()``'s NULL, and repartition/coalesce accepted."""

from __future__ import annotations

import logging

import pytest

from unbounded.sql import functions as F


def test_spark_context_parts_streaming_scripts_use(spark):
    sc = spark.sparkContext
    assert sc is spark.sparkContext
    assert sc.applicationId.startswith("local-")
    assert sc.uiWebUrl.startswith("http://127.0.0.1:")  # the UI is on by default
    assert sc.defaultParallelism >= 1
    assert isinstance(sc.appName, str)
    spark.conf.set("unbounded.executor.threads", "3")
    assert sc.defaultParallelism == 3


def test_set_log_level_sets_unbounded_loggers_and_rejects_unknown_levels(spark):
    logger = logging.getLogger("unbounded")
    before = logger.level
    try:
        spark.sparkContext.setLogLevel("ERROR")
        assert logger.level == logging.ERROR
        spark.sparkContext.setLogLevel("warn")
        assert logger.level == logging.WARNING
        with pytest.raises(ValueError, match="did not match one of"):
            spark.sparkContext.setLogLevel("LOUD")
    finally:
        logger.setLevel(before)


def test_show_prints_null_as_spark_4_does(spark, capsys):
    df = spark.createDataFrame([(1, None, [1, None])], "a int, b string, c array<int>")
    df.show()
    assert capsys.readouterr().out == (
        "+---+----+---------+\n"
        "|  a|   b|        c|\n"
        "+---+----+---------+\n"
        "|  1|NULL|[1, NULL]|\n"
        "+---+----+---------+\n\n")


def test_repartition_and_coalesce_keep_the_rows(spark):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, s string")
    assert df.repartition(4).collect() == df.collect()
    assert df.repartition(2, "s").coalesce(1).agg(F.sum("id")).collect()[0][0] == 3
    assert df.repartition("s").count() == 2
