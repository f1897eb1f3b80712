"""The file pipeline of the demo, killed with SIGKILL mid-run, restarted, and checked.

Generates JSON events, runs ``events -> filter/project -> Parquet`` as a streaming query in
a child process, SIGKILLs the child after a few committed batches, restarts it on the
same checkpoint, and proves from the committed output that every expected row is there
exactly once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter

from rich.console import Console

from unbounded.demo.proof import announce_ui, kill_after_commits, print_proof

__all__ = ["build_query", "generate_events", "job_command", "run_demo", "run_job", "verify"]

EVENT_SCHEMA = "id LONG, kind STRING, amount DOUBLE, ts STRING"


def generate_events(folder: str, files: int, per_file: int, seed: int = 7) -> int:
    """JSON-lines event files; every 10th event is of kind 'noise' (filtered out)."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    kinds = ["click", "view", "buy"]
    for f in range(files):
        lines = []
        for i in range(per_file):
            n = f * per_file + i
            kind = "noise" if n % 10 == 9 else kinds[n % 3]
            ts = f"2026-11-25 10:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}"
            amount = rng.randint(1, 999) / 10
            lines.append(json.dumps({"id": n, "kind": kind, "amount": amount, "ts": ts}))
        tmp = os.path.join(folder, f".events-{f:04d}.json.tmp")
        with open(tmp, "w") as out:
            out.write("\n".join(lines) + "\n")
        os.rename(tmp, os.path.join(folder, f"events-{f:04d}.json"))
    return files * per_file


def build_query(spark: object, input_dir: str, output_dir: str, checkpoint: str,
                files_per_trigger: int) -> object:
    """The demo's streaming query (a function so tests run exactly the same query)."""
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    assert isinstance(spark, SparkSession)
    events = (spark.readStream.schema(EVENT_SCHEMA)
              .option("maxFilesPerTrigger", files_per_trigger).json(input_dir))
    cleaned = (events.where(F.col("kind") != "noise")
               .select("id", F.upper("kind").alias("kind"),
                       (F.col("amount") * 2).alias("double_amount"),
                       F.to_timestamp("ts").alias("event_time")))
    return (cleaned.writeStream.format("parquet")
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start(output_dir))


def run_job(input_dir: str, output_dir: str, checkpoint: str, files_per_trigger: int) -> None:
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("demo").getOrCreate()
    query = build_query(spark, input_dir, output_dir, checkpoint, files_per_trigger)
    announce_ui(spark)
    query.awaitTermination()  # type: ignore[attr-defined]


def job_command(workdir: str, files_per_trigger: int) -> list[str]:
    return [sys.executable, "-m", "unbounded.demo", "files-job",
            "--input", os.path.join(workdir, "input"),
            "--output", os.path.join(workdir, "output"),
            "--checkpoint", os.path.join(workdir, "checkpoint"),
            "--files-per-trigger", str(files_per_trigger)]


def verify(workdir: str) -> dict[str, int]:
    """Compare the committed output with the input transformed once."""
    import polars as pl

    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("demo-check").getOrCreate()
    out = spark.read.parquet(os.path.join(workdir, "output")).select("id").toArrow()
    ids = pl.from_arrow(out)["id"].to_list()  # type: ignore[index]
    inputs = pl.read_ndjson(os.path.join(workdir, "input", "*.json"))
    expected = set(inputs.filter(pl.col("kind") != "noise")["id"].to_list())
    counts = Counter(ids)
    return {"input rows": inputs.height, "expected output rows": len(expected),
            "output rows": len(ids), "duplicates": sum(c - 1 for c in counts.values() if c > 1),
            "missing": len(expected - set(counts)), "unexpected": len(set(counts) - expected)}


def run_demo(console: Console, workdir: str, files: int = 40, per_file: int = 10_000,
             files_per_trigger: int = 2) -> bool:
    """Files -> filter/project -> Parquet, killed after 3 batches and restarted."""
    shutil.rmtree(workdir, ignore_errors=True)
    n = generate_events(os.path.join(workdir, "input"), files, per_file)
    console.rule("[bold]files -> filter/project -> Parquet")
    console.print(f"generated {n:,} JSON events in {files} files under {workdir}/input")
    cmd = job_command(workdir, files_per_trigger)
    done = kill_after_commits(cmd, os.path.join(workdir, "checkpoint"), 3, timeout=120)
    console.print(f"[bold red]SIGKILL[/] after {done} committed batches; restarting")
    subprocess.run(cmd, check=True, timeout=300)
    proof = verify(workdir)
    ok = proof["output rows"] == proof["expected output rows"]
    return print_proof(console, "files: exactly-once proof", proof) and ok
