"""A streaming job into PostgreSQL that the crash tests run as a real process.

``python tests/streaming/postgres_job.py --input DIR --checkpoint DIR --url URL
--password PW --table T`` reads the JSON files of ``--input`` one per batch
(``trigger(availableNow=True)``) and writes ``(id, name, amount)`` with the postgresql
sink, then exits 0. Option ``--mode upsert`` upserts on ``id``.
"""

from __future__ import annotations

import argparse

__all__ = ["main"]

SCHEMA = "id LONG, name STRING, amount DOUBLE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="postgres_job.py")
    for name in ("--input", "--checkpoint", "--url", "--password", "--table"):
        parser.add_argument(name, required=True)
    parser.add_argument("--mode", default="append")
    args = parser.parse_args(argv)

    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("postgres-crash").getOrCreate()
    rows = (spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1)
            .json(args.input))
    writer = (rows.writeStream.format("postgresql")
              .option("url", args.url).option("user", "postgres")
              .option("password", args.password).option("dbtable", args.table)
              .option("retryTimeoutMs", "20000")
              .option("checkpointLocation", args.checkpoint)
              .trigger(availableNow=True))
    if args.mode == "upsert":
        writer = writer.option("mode", "upsert").option("upsertKeys", "id")
    query = writer.start()
    query.awaitTermination()
    print("\n".join(p.json for p in query.recentProgress))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
