"""The shared test fixtures pin the zones, so results do not depend on the machine's."""

from __future__ import annotations

import time
from datetime import datetime

from unbounded.sql import SparkSession


def test_the_test_session_and_the_python_process_are_in_utc(spark: SparkSession) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert time.timezone == 0 and time.localtime(0).tm_hour == 0
    df = spark.createDataFrame([(datetime(2024, 3, 10, 12, 0),)], "ts timestamp")
    assert df.selectExpr("unix_timestamp(ts)").collect()[0][0] == 1710072000
