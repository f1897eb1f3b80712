"""Runs one query in a fresh process and prints the modules it imported (one a line).

Used by ``test_startup_imports.py``: start-up is a measured figure (issue 15), so the
libraries a query does not use must stay unimported, and only a fresh process shows it.

    python startup_imports_job.py files INPUT OUTPUT CHECKPOINT
    python startup_imports_job.py rate OUTPUT CHECKPOINT
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["main"]


def _files(input_dir: str, output_dir: str, checkpoint: str) -> None:
    """The small-batch benchmark's windowed query, file -> Parquet, to its first commit
    (back-to-back triggers, as the benchmark's start-up figure runs it: availableNow and
    once look for a terminal to draw a progress bar on, which imports rich)."""
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName("startup-imports").getOrCreate()
    events = (spark.readStream.schema("event_time TIMESTAMP, key LONG, value DOUBLE")
              .option("maxFilesPerTrigger", 1).parquet(input_dir))
    counts = (events.withWatermark("event_time", "10 seconds")
              .groupBy(F.window("event_time", "5 seconds"))
              .agg(F.count("*").alias("count"), F.sum("value").alias("sum")))
    query = (counts.writeStream.format("parquet").outputMode("append")
             .option("checkpointLocation", checkpoint).trigger(processingTime="0 seconds")
             .start(output_dir))
    _until_first_rows(query)


def _until_first_rows(query: Any) -> None:
    while not any(p["numInputRows"] for p in query.recentProgress):
        time.sleep(0.01)
    query.stop()


def _rate(output_dir: str, checkpoint: str) -> None:
    """A stateless projection of the rate source into Parquet, until its first commit."""
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName("startup-imports").getOrCreate()
    events = spark.readStream.format("rate").option("rowsPerSecond", 100).load()
    query = (events.select("timestamp", (F.col("value") * 2).alias("doubled"))
             .writeStream.format("parquet").option("checkpointLocation", checkpoint)
             .trigger(processingTime="0 seconds").start(output_dir))
    _until_first_rows(query)


def main(argv: list[str]) -> int:
    if argv[0] == "files":
        _files(*argv[1:])
    else:
        _rate(*argv[1:])
    print("\n".join(sorted(sys.modules)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
