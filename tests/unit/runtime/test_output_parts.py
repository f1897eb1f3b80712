"""Output over a stateful operator reaches the sink in parts, one per shuffle partition
at most, so a file sink writes them in parallel (as Spark writes a file per partition)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from unbounded.runtime.stage_runner import MIN_ROWS_PER_OUTPUT_PART
from unbounded.sql import SparkSession
from unbounded.sql import functions as F


def _data_files(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".parquet"))


def test_a_large_aggregation_output_is_written_as_one_file_per_shuffle_partition(
        spark: SparkSession, tmp_path: str) -> None:
    rows = 2 * MIN_ROWS_PER_OUTPUT_PART + 10
    src = os.path.join(tmp_path, "in")
    os.makedirs(src)
    pq.write_table(pa.table({"k": list(range(rows))}), os.path.join(src, "a.parquet"))
    out = os.path.join(tmp_path, "out")
    counts = (spark.readStream.schema("k LONG").parquet(src)
              .withColumn("t", F.timestamp_seconds(F.col("k") * 0))
              .withWatermark("t", "0 seconds")
              .dropDuplicates(["k"]))
    query = (counts.writeStream.format("parquet").option("checkpointLocation",
                                                         os.path.join(tmp_path, "ck"))
             .trigger(availableNow=True).start(out))
    query.awaitTermination(60)
    files = _data_files(out)
    assert [f.split("-")[1] for f in files] == ["00000", "00001"]
    sizes = sorted(pq.read_metadata(os.path.join(out, f)).num_rows for f in files)
    assert sizes == [rows // 2, rows - rows // 2]
    got = sorted(spark.read.parquet(out).toArrow().column("k").to_pylist())
    assert got == list(range(rows))


def test_a_small_output_stays_one_file(spark: SparkSession, tmp_path: str) -> None:
    rows = MIN_ROWS_PER_OUTPUT_PART + 10  # less than two parts' worth
    src = os.path.join(tmp_path, "in")
    os.makedirs(src)
    pq.write_table(pa.table({"k": list(range(rows))}), os.path.join(src, "a.parquet"))
    out = os.path.join(tmp_path, "out")
    query = (spark.readStream.schema("k LONG").parquet(src).dropDuplicates(["k"])
             .writeStream.format("parquet")
             .option("checkpointLocation", os.path.join(tmp_path, "ck"))
             .trigger(availableNow=True).start(out))
    query.awaitTermination(60)
    assert len(_data_files(out)) == 1
    assert spark.read.parquet(out).count() == rows
