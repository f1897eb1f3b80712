"""A file -> Parquet job that keeps only two batches of logs, run as a child process by the
fencing and start-up check tests.

Usage: python fencing_job.py INPUT OUTPUT CHECKPOINT [OPTION=VALUE ...]
(the options go to the JSON source, e.g. ignoreMissingFiles=true)
"""

from __future__ import annotations

import sys

from unbounded.sql import SparkSession
from unbounded.sql import functions as F


def main(input_dir: str, output_dir: str, checkpoint: str, *options: str) -> None:
    spark = (SparkSession.builder.appName("fencing-job")
             .config("spark.sql.streaming.minBatchesToRetain", "2").getOrCreate())
    reader = spark.readStream.schema("id LONG, kind STRING").option("maxFilesPerTrigger", 1)
    for option in options:
        key, _, value = option.partition("=")
        reader = reader.option(key, value)
    rows = reader.json(input_dir).where(F.col("kind") != "noise")
    query = (rows.writeStream.format("parquet").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(output_dir))
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:])
