"""Random and per-partition functions over JSON files, run as a child process by
``test_random_functions.py``: each foreachBatch call appends its batch id and rows to a
log, so a batch that runs twice (killed, then restarted) leaves both attempts there.

Usage: python random_functions_job.py INPUT CHECKPOINT LOG
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from unbounded.sql import SparkSession
from unbounded.sql import functions as F


def main(input_dir: str, checkpoint: str, log: str) -> None:
    spark = SparkSession.builder.appName("random-functions-job").getOrCreate()
    rows = (spark.readStream.schema("id LONG").option("maxFilesPerTrigger", 1).json(input_dir)
            .select("id", F.rand(7).alias("r"), F.randn(7).alias("n"), F.uuid().alias("u"),
                    F.spark_partition_id().alias("p")))

    def append(batch: Any, batch_id: int) -> None:
        got = sorted([list(r) for r in batch.collect()], key=lambda r: r[0])
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps([batch_id, got]) + "\n")
            out.flush()
            os.fsync(out.fileno())

    query = (rows.writeStream.foreachBatch(append).option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start())
    query.awaitTermination()


if __name__ == "__main__":
    main(*sys.argv[1:4])
