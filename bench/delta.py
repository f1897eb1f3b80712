"""Parquet -> windowed aggregation -> Delta table, exactly-once (issue 14).

The query of ``bench/table_sinks.py`` writes through ``writeStream.format("delta")``:
one Delta commit per batch carrying the query's ``txn``. Baseline: the same output rows
written by ``deltalake.write_deltalake`` at once into a new table (delta-rs, as the
sink uses it). Aim: the sink's rate (rows over the time inside ``add_batch``) at least
0.8x the direct write's.
"""

from __future__ import annotations

import os

import polars as pl
import pyarrow as pa

from bench.harness import BenchContext, Workload, WorkloadResult, stopwatch
from bench.table_sinks import run_workload

__all__ = ["WORKLOAD", "DeltaTarget", "run"]


class DeltaTarget:
    """The Delta sink and ``write_deltalake``, each into tables under ``root``."""

    name = "delta"
    direct_tries = 5  # about 0.1 s each

    def __init__(self, root: str) -> None:
        from unbounded.sinks.delta import DeltaSink

        self.root = root
        self.sink_class: type = DeltaSink

    def _path(self, kind: str, run: int) -> str:
        return os.path.join(self.root, f"{kind}-{run}")

    def start(self, writer: object, run: int) -> object:
        return writer.format("delta").start(self._path("sink", run))  # type: ignore[attr-defined]

    def write_direct(self, rows: pa.Table, run: int) -> float:
        from deltalake import write_deltalake

        with stopwatch() as elapsed:
            write_deltalake(self._path("direct", run), rows)
        return elapsed[0]

    def write_direct_batches(self, batches: list[pa.Table], run: int) -> list[float]:
        from deltalake import write_deltalake

        path = self._path("direct-batches", run)
        seconds = []
        for rows in batches:
            with stopwatch() as elapsed:
                write_deltalake(path, rows, mode="append")
            seconds.append(elapsed[0])
        return seconds

    def read_back(self, run: int) -> pl.DataFrame:
        return pl.read_delta(self._path("sink", run))


def run(ctx: BenchContext) -> WorkloadResult:
    return run_workload(ctx, "delta_sink",
                        lambda run_dir: DeltaTarget(os.path.join(run_dir, "tables")))


WORKLOAD = Workload("delta_sink", "Parquet -> 5 s windows by key -> Delta (txn per batch) "
                    "vs write_deltalake", 4_000_000, run)
