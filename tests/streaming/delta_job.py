"""A Delta -> Delta job (one input version per batch), run as a child process by the
Delta crash tests.

Usage: python delta_job.py INPUT_TABLE OUTPUT_TABLE CHECKPOINT
"""

from __future__ import annotations

import sys

from unbounded.sql import SparkSession
from unbounded.sql import functions as F


def main(input_table: str, output_table: str, checkpoint: str) -> None:
    spark = SparkSession.builder.appName("delta-job").getOrCreate()
    rows = (spark.readStream.format("delta").option("maxFilesPerTrigger", 1)
            .load(input_table).where(F.col("kind") != "noise")
            .select("id", "kind", (F.col("id") * 10).alias("score")))
    query = (rows.writeStream.format("delta").option("checkpointLocation", checkpoint)
             .partitionBy("kind").trigger(availableNow=True).start(output_table))
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:])
