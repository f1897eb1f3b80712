"""The windowed workload as a driver process on a Ray cluster, for the driver-kill tests.

Usage: RAY_ADDRESS=<cluster> python ray_job.py WORKDIR  (master("ray") joins that cluster)
   or: python ray_job.py WORKDIR ray://host:port  (through Ray Client)
"""

from __future__ import annotations

import sys
from pathlib import Path

from ray_fixtures import windowed_query
from unbounded.sql import SparkSession


def main(workdir: str, master: str = "ray") -> None:
    spark = SparkSession.builder.master(master).config(
        "spark.sql.shuffle.partitions", "2").getOrCreate()
    try:
        windowed_query(spark, Path(workdir)).awaitTermination()
    finally:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:3])
