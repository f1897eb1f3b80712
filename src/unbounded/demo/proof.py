"""What both demo pipelines share: killing a child after N commits, printing the proof."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from rich.console import Console
from rich.table import Table

__all__ = ["announce_ui", "committed_batches", "kill_after_commits", "print_proof"]


def announce_ui(spark: object) -> str | None:
    """Print where the job's live UI is: it lives only while the job runs, so the line
    comes right after the query starts (flushed: the demo reads it from a pipe)."""
    from unbounded.sql import SparkSession

    assert isinstance(spark, SparkSession)
    url = spark.sparkContext.uiWebUrl
    if url is not None:
        print(f"Streaming UI (live while this job runs): {url}", flush=True)
    return url


def committed_batches(checkpoint: str) -> int:
    folder = os.path.join(checkpoint, "commits")
    return len([n for n in os.listdir(folder) if n.isdigit()]) if os.path.isdir(folder) else 0


def kill_after_commits(cmd: list[str], checkpoint: str, commits: int, timeout: float) -> int:
    """Start ``cmd``, SIGKILL it once ``commits`` batches are committed; returns how many
    batches were committed when it died."""
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and committed_batches(checkpoint) < commits \
                and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return committed_batches(checkpoint)


def print_proof(console: Console, title: str, proof: dict[str, int]) -> bool:
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in proof.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
    ok = proof.get("duplicates", 0) == 0 and proof.get("missing", 0) == 0 \
        and proof.get("unexpected", 0) == 0
    console.print("[green]PASS[/]" if ok else "[red]FAIL[/]")
    return ok
