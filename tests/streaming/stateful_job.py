"""A windowed-count job over JSON event files, run as a child process by the crash tests.

Usage: python stateful_job.py INPUT OUTPUT CHECKPOINT
"""

from __future__ import annotations

import sys

from unbounded.sql import SparkSession
from unbounded.sql import functions as F


def main(input_dir: str, output_dir: str, checkpoint: str) -> None:
    spark = SparkSession.builder.appName("stateful-job").config(
        "spark.sql.shuffle.partitions", "3").getOrCreate()
    events = (spark.readStream.schema("id LONG, kind STRING, amount DOUBLE, ts STRING")
              .option("maxFilesPerTrigger", 1).json(input_dir)
              .withColumn("event_time", F.to_timestamp("ts")))
    counts = (events.withWatermark("event_time", "30 seconds")
              .groupBy(F.window("event_time", "1 minute"), "kind")
              .agg(F.count("*").alias("n"), F.sum("amount").alias("total")))
    query = (counts.writeStream.outputMode("append").format("parquet")
             .option("checkpointLocation", checkpoint).trigger(availableNow=True)
             .start(output_dir))
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:4])
