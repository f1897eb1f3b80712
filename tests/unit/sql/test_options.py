"""Option values reach every reader and writer as the text Spark keeps them in."""

from __future__ import annotations

from pathlib import Path

import pytest

from unbounded.sql import SparkSession
from unbounded.sql.options import option_text


@pytest.fixture
def spark() -> SparkSession:
    session = SparkSession.builder.getOrCreate()
    yield session  # type: ignore[misc]
    session.stop()


def test_booleans_are_lower_case_and_the_rest_str() -> None:
    assert [option_text(v) for v in (True, False, 3, 2.5, "x")] == \
        ["true", "false", "3", "2.5", "x"]


def test_batch_and_streaming_readers_and_writers_keep_the_same_text(
        spark: SparkSession, tmp_path: Path) -> None:
    df = spark.createDataFrame([(1, "a")], "id INT, s STRING")
    holders = [spark.read.option("header", True).options(inferSchema=False),
               df.write.option("header", True).options(inferSchema=False),
               spark.readStream.option("header", True).options(inferSchema=False),
               spark.readStream.format("rate").load().writeStream.option("header", True)
               .options(inferSchema=False)]
    for holder in holders:
        assert holder._options == {"header": "true", "inferSchema": "false"}


def test_a_boolean_header_option_round_trips_a_csv_file(spark: SparkSession,
                                                        tmp_path: Path) -> None:
    df = spark.createDataFrame([(1, "a")], "id INT, s STRING")
    df.write.option("header", True).csv(str(tmp_path / "out"))
    back = spark.read.option("header", True).option("inferSchema", True).csv(
        str(tmp_path / "out"))
    assert back.columns == ["id", "s"] and [tuple(r) for r in back.collect()] == [(1, "a")]
