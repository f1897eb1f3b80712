"""A file -> Parquet query whose output folder and checkpoint are S3 URLs, run once
(availableNow) as a driver process: the S3 file sink tests start it with the store's
settings in ``FSSPEC_S3`` and a crash point in ``UNBOUNDED_FAULT``.

Usage: python s3_sink_job.py INPUT OUTPUT_URL CHECKPOINT_URL LEASE_TIMEOUT_MS
"""

from __future__ import annotations

import sys

from unbounded.sql import SparkSession


def main(input_dir: str, output: str, checkpoint: str, lease_ms: str) -> None:
    spark = (SparkSession.builder.appName("s3-sink")
             .config("spark.unbounded.checkpoint.leaseTimeoutMs", lease_ms).getOrCreate())
    rows = (spark.readStream.schema("word STRING, n INT").option("maxFilesPerTrigger", 1)
            .json(input_dir).selectExpr("word", "n * 10 AS n10"))
    query = (rows.writeStream.format("parquet").option("path", output)
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:])
