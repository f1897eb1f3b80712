"""The Ray tests' workloads as a driver process on a Ray cluster, for the driver-kill
tests: the windowed aggregation, or Kafka -> Kafka.

Usage: RAY_ADDRESS=<cluster> python ray_job.py WORKDIR  (master("ray") joins that cluster)
   or: python ray_job.py WORKDIR ray://host:port  (through Ray Client)
   or: RAY_ADDRESS=<cluster> python ray_job.py WORKDIR kafka BOOTSTRAP SOURCE SINK
"""

from __future__ import annotations

import sys
from pathlib import Path

from ray_fixtures import kafka_to_kafka_query, to_output, windowed_query
from unbounded.sql import SparkSession


def main(workdir: str, master: str = "ray", *kafka: str) -> None:
    spark = SparkSession.builder.master("ray" if master == "kafka" else master).config(
        "spark.sql.shuffle.partitions", "2").getOrCreate()
    try:
        if master == "kafka":
            bootstrap, source, sink = kafka
            query = kafka_to_kafka_query(spark, bootstrap, (source, sink), Path(workdir),
                                         to_output)
        else:
            query = windowed_query(spark, Path(workdir))
        query.awaitTermination()
    finally:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
