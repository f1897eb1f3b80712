"""One partition's offset range read into one Arrow table: the wire reader vs librdkafka.

One tansu broker (``unbounded.testing.broker``; or ``$UNBOUNDED_TEST_KAFKA_BOOTSTRAP``)
holds ``rows`` records with 100-byte values in one partition (the last one flushed on
its own, for tansu's ListOffsets). Each reader reads the whole range, on one thread,
the way a query's task does (``KafkaInputPartition.read`` with the source's client
settings), connection set-up included; each runs ``REPEATS`` times, alternating, and
the best run counts. The baseline is the librdkafka reader (confluent-kafka, one
``Message`` per record); the target is the issue's: at least 1M records/s on the wire.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.harness import (
    BenchContext,
    Measure,
    Workload,
    WorkloadResult,
    stopwatch,
)
from bench.kafka import VALUE_BYTES, produce_input

__all__ = ["WORKLOAD", "run"]

REPEATS = 3
TARGET_RATE = 1_000_000
READERS = ("librdkafka", "wire")


@contextmanager
def _broker() -> Iterator[str]:
    from unbounded.testing.broker import run_broker

    with run_broker() as bootstrap:
        yield bootstrap


def _partition(bootstrap: str, topic: str, rows: int, reader: str) -> Any:
    """The source's task for the whole range, with the source's client settings."""
    from unbounded.sources.base import SourceContext
    from unbounded.sources.kafka import KafkaSource

    options = {"kafka.bootstrap.servers": bootstrap, "assign": json.dumps({topic: [0]}),
               "reader": reader}
    source = KafkaSource("kafka", SourceContext(options, None, None))
    [part] = source.partitions({topic: {"0": 0}}, {topic: {"0": rows}})
    return part


def _read(part: Any) -> tuple[float, Any]:
    """Seconds to read ``part`` from a cold client, and the table."""
    from unbounded._kafka.fetch import close_clients
    from unbounded.sources.kafka import _POOL

    close_clients()
    _POOL.close()
    with stopwatch() as elapsed:
        table = part.read()
    print(f"{part.reader}: {elapsed[0]:.2f} s", flush=True)  # the child's log shows progress
    return elapsed[0], table


def _time_readers(bootstrap: str, topic: str, rows: int) -> tuple[dict[str, list[float]], bool]:
    """Each reader's run times, and whether both read the same table."""
    parts = {r: _partition(bootstrap, topic, rows, r) for r in READERS}
    times: dict[str, list[float]] = {r: [] for r in READERS}
    tables: dict[str, Any] = {}
    for _ in range(REPEATS):
        for reader in READERS:
            seconds, table = _read(parts[reader])
            times[reader].append(seconds)
            if table.num_rows != rows:
                raise RuntimeError(f"{reader} read {table.num_rows:,} of {rows:,} records")
            tables[reader] = table
            del table
    same = tables["wire"].equals(tables["librdkafka"])
    return times, same


def _measure(name: str, rows: int, seconds: list[float], baseline: float | None) -> Measure:
    rate = rows / min(seconds)
    note = (f"best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s "
            f"of {len(seconds)}")
    if baseline is None:
        return Measure(name, rate, "records/s", 1.0, note=note)
    return Measure(name, rate, "records/s", rate / baseline, f">= {TARGET_RATE / 1e6:.0f}M "
                   "records/s", rate >= TARGET_RATE, note)


def run(ctx: BenchContext) -> WorkloadResult:
    rows = ctx.rows
    topic = f"read-{time.monotonic_ns()}"
    with _broker() as bootstrap:
        with stopwatch() as produced:
            produce_input(bootstrap, topic, rows, partitions=1)
        print(f"produced {rows:,} records in {produced[0]:.2f} s", flush=True)
        times, same = _time_readers(bootstrap, topic, rows)
    baseline = _measure("librdkafka reader (baseline)", rows, times["librdkafka"], None)
    assert baseline.value is not None
    wire = _measure("wire reader", rows, times["wire"], baseline.value)
    return WorkloadResult(
        "kafka_read",
        measures=[baseline, wire],
        checks={"same table from both readers": "ok" if same else "FAIL tables differ"},
        params={"rows": rows, "value_bytes": VALUE_BYTES, "repeats": REPEATS,
                "produce_seconds": round(produced[0], 2),
                "seconds": {r: [round(s, 3) for s in t] for r, t in times.items()}},
    )


WORKLOAD = Workload("kafka_read", "one partition's range into one Arrow table: wire reader vs "
                    "librdkafka", 2_000_000, run)
