"""Ad impressions (JSON files) joined with clicks (Parquet files) into Parquet files, run
as a child process by the join crash tests.

Usage: python join_job.py IMPRESSIONS CLICKS HOW OUTPUT CHECKPOINT
"""

from __future__ import annotations

import sys

from unbounded.sql import SparkSession
from unbounded.sql import functions as F

CONDITION = ("clickAdId = adId AND clickTime >= impressionTime AND "
             "clickTime <= impressionTime + interval 15 minutes")


def main(impressions_dir: str, clicks_dir: str, how: str, output_dir: str,
         checkpoint: str) -> None:
    spark = SparkSession.builder.appName("join-job").config(
        "spark.sql.shuffle.partitions", "3").getOrCreate()
    impressions = (spark.readStream.schema("adId LONG, impressionId LONG, ts STRING")
                   .option("maxFilesPerTrigger", 1).json(impressions_dir)
                   .select("adId", "impressionId",
                           F.to_timestamp("ts").alias("impressionTime"))
                   .withWatermark("impressionTime", "5 minutes"))
    clicks = (spark.readStream.schema("clickAdId LONG, clickId LONG, clickTime TIMESTAMP")
              .option("maxFilesPerTrigger", 1).parquet(clicks_dir)
              .withWatermark("clickTime", "10 minutes"))
    joined = impressions.join(clicks, F.expr(CONDITION), how)
    query = (joined.writeStream.outputMode("append").format("parquet")
             .option("checkpointLocation", checkpoint).trigger(availableNow=True)
             .start(output_dir))
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:6])
