"""A file -> Parquet query on a checkpoint URL that runs until it is killed, as a driver
on another node would: the S3 checkpoint tests start it as a child process, with the
store's settings in ``FSSPEC_S3`` (fsspec reads them from the environment).

Usage: python s3_driver_job.py INPUT OUTPUT CHECKPOINT LEASE_TIMEOUT_MS
"""

from __future__ import annotations

import sys

from unbounded.sql import SparkSession


def main(input_dir: str, output_dir: str, checkpoint: str, lease_ms: str) -> None:
    spark = (SparkSession.builder.appName("s3-driver")
             .config("spark.unbounded.checkpoint.leaseTimeoutMs", lease_ms).getOrCreate())
    rows = (spark.readStream.schema("word STRING, n INT").option("maxFilesPerTrigger", 1)
            .json(input_dir).where("n > 0").selectExpr("word", "n * 10 AS n10"))
    query = (rows.writeStream.format("parquet").option("path", output_dir)
             .option("checkpointLocation", checkpoint)
             .trigger(processingTime="200 milliseconds").start())
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:])
