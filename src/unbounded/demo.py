"""``make demo``: a file pipeline killed with SIGKILL mid-run, restarted, and checked.

Generates JSON events, runs ``events -> filter/project -> Parquet`` as a streaming query in
a child process, SIGKILLs the child after a few committed batches, restarts it on the
same checkpoint, and proves from the committed output that every expected row is there
exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

__all__ = ["build_query", "generate_events", "main"]

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


def _run_job(args: argparse.Namespace) -> None:
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("demo").getOrCreate()
    query = build_query(spark, args.input, args.output, args.checkpoint, args.files_per_trigger)
    query.awaitTermination()  # type: ignore[attr-defined]


def _job_command(workdir: str, files_per_trigger: int) -> list[str]:
    return [sys.executable, "-m", "unbounded.demo", "job",
            "--input", os.path.join(workdir, "input"),
            "--output", os.path.join(workdir, "output"),
            "--checkpoint", os.path.join(workdir, "checkpoint"),
            "--files-per-trigger", str(files_per_trigger)]


def _committed(workdir: str) -> int:
    folder = os.path.join(workdir, "checkpoint", "commits")
    return len([n for n in os.listdir(folder) if n.isdigit()]) if os.path.isdir(folder) else 0


def _kill_after_commits(cmd: list[str], workdir: str, commits: int, timeout: float) -> int:
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and _committed(workdir) < commits and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return _committed(workdir)


def _verify(workdir: str) -> dict[str, int]:
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


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    workdir = os.path.abspath(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.monotonic()
    n = generate_events(os.path.join(workdir, "input"), args.files, args.per_file)
    console.print(f"generated {n:,} events in {args.files} files under {workdir}/input")
    cmd = _job_command(workdir, args.files_per_trigger)
    done = _kill_after_commits(cmd, workdir, commits=3, timeout=120)
    console.print(f"[bold red]SIGKILL[/] after {done} committed batches; restarting on the "
                  "same checkpoint")
    subprocess.run(cmd, check=True, timeout=300)
    proof = _verify(workdir)
    table = Table(title="exactly-once proof")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in proof.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
    ok = proof["duplicates"] == 0 and proof["missing"] == 0 and proof["unexpected"] == 0 \
        and proof["output rows"] == proof["expected output rows"]
    console.print(f"{'[green]PASS' if ok else '[red]FAIL'}[/] in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unbounded.demo")
    sub = parser.add_subparsers(dest="command")
    job = sub.add_parser("job", help="run the streaming query once (used by the demo)")
    job.add_argument("--input", required=True)
    job.add_argument("--output", required=True)
    job.add_argument("--checkpoint", required=True)
    job.add_argument("--files-per-trigger", type=int, default=2)
    parser.add_argument("--workdir", default="demo-output")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--per-file", type=int, default=10_000)
    parser.add_argument("--files-per-trigger", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "job":
        _run_job(args)
        return 0
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
