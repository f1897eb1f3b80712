"""Streaming jobs the Kafka end-to-end tests run as real processes (to SIGKILL them).

Run as ``python tests/streaming/kafka_jobs.py <job> --bootstrap B --topic T ...`` with
``src`` and ``tests`` on ``PYTHONPATH``. Every job uses ``trigger(availableNow=True)``:
it works off what the topic holds when it starts, in batches of at most
``--max-offsets`` offsets, and exits 0.

Jobs:
    to-files   Kafka -> (partition, offset, value as string) -> Parquet files.
    to-kafka   Kafka -> value "in-<n>" becomes "out-<n>" -> Kafka, exactly-once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["main", "output_value"]


def output_value(input_value: str) -> str:
    """What ``to-kafka`` writes for an input value (the tests' expectation)."""
    return "out-" + input_value.removeprefix("in-")


def _source(spark: Any, args: argparse.Namespace) -> Any:
    return (spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", args.bootstrap)
            .option("subscribe", args.topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(args.max_offsets))
            .load())


def _to_files(spark: Any, args: argparse.Namespace) -> Any:
    from unbounded.sql import functions as F

    rows = _source(spark, args).select(
        "partition", "offset", F.col("value").cast("string").alias("value"))
    return (rows.writeStream.format("parquet")
            .option("checkpointLocation", args.checkpoint)
            .trigger(availableNow=True)
            .start(args.output))


def _to_kafka(spark: Any, args: argparse.Namespace) -> Any:
    from unbounded.sql import functions as F

    text = F.col("value").cast("string")
    rows = _source(spark, args).select(
        F.concat(F.lit("out-"), F.regexp_replace(text, "^in-", "")).alias("value"))
    return (rows.writeStream.format("kafka")
            .option("kafka.bootstrap.servers", args.bootstrap)
            .option("topic", args.output)
            .option("checkpointLocation", args.checkpoint)
            .trigger(availableNow=True)
            .start())


JOBS = {"to-files": _to_files, "to-kafka": _to_kafka}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka_jobs.py")
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output", required=True, help="a folder (to-files) or a topic")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--max-offsets", type=int, default=100)
    args = parser.parse_args(argv)

    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName(f"kafka-e2e-{args.job}").getOrCreate()
    query = JOBS[args.job](spark, args)
    query.awaitTermination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
