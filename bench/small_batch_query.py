"""The small-batch queries of ``bench/small_batch.py``, and a process that runs one.

Kept apart from the workload (no numpy, no harness) so that ``python -m
bench.small_batch_query`` pays at start-up only what a user's script would: the time
from launching it to its first commit is a measured figure (fresh start, SIGKILL-restart).

    python -m bench.small_batch_query INPUT OUTPUT CHECKPOINT
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unbounded.sql import DataFrame, SparkSession

__all__ = ["FILE_SCHEMA_DDL", "WATERMARK", "WINDOW", "file_stream", "main", "windowed"]

FILE_SCHEMA_DDL = "event_time TIMESTAMP, key LONG, value DOUBLE"
WINDOW = "5 seconds"
WATERMARK = "10 seconds"


def windowed(events: DataFrame, time_column: str) -> DataFrame:
    """Count and sum per 5 s window, watermark 10 s (the windowed workload's query)."""
    from unbounded.sql import functions as F

    return (events.withWatermark(time_column, WATERMARK)
            .groupBy(F.window(time_column, WINDOW)).agg(F.count("*").alias("count"),
                                                        F.sum("value").alias("sum")))


def file_stream(spark: SparkSession, input_dir: str, files_per_trigger: int = 1) -> DataFrame:
    """The Parquet files of ``input_dir``, ``files_per_trigger`` a batch."""
    return (spark.readStream.schema(FILE_SCHEMA_DDL)
            .option("maxFilesPerTrigger", files_per_trigger).parquet(input_dir))


def start_windowed_files(spark: SparkSession, input_dir: str, output_dir: str,
                         checkpoint: str, **trigger: Any) -> Any:
    """The windowed query over ``input_dir`` into a Parquet sink, started."""
    return (windowed(file_stream(spark, input_dir), "event_time")
            .writeStream.format("parquet").outputMode("append")
            .option("checkpointLocation", checkpoint).trigger(**trigger).start(output_dir))


def main(argv: list[str]) -> int:
    """Run the windowed file query with back-to-back triggers until killed."""
    from unbounded.sql import SparkSession

    input_dir, output_dir, checkpoint = argv
    spark = SparkSession.builder.appName("bench-small-batch").getOrCreate()
    query = start_windowed_files(spark, input_dir, output_dir, checkpoint,
                                 processingTime="0 seconds")
    query.awaitTermination()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
