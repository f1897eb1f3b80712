"""One rate query's batch latency, fsyncs and CPU, for A/B runs of two checkouts.

    PYTHONPATH=<tree>/src:<this checkout> .venv/bin/python -m bench.rate_latency_ab \
        QUERY SECONDS [--phases]

QUERY is ``windowed`` or ``stateless`` (``bench/small_batch.py``'s rate queries: the
rate source at 1000 rows/s, back-to-back triggers, Parquet sink, checkpoint on the
disk). Printed as JSON: the median and p99 of data batches (wall time of the trigger),
the no-data batches' median, fsyncs per trigger, process CPU per second of run. With
``--phases`` each data batch's wall time is split by step (``perf_counter`` wrappers on
the functions named in the output; medians over data batches), the method of
``docs/perf/small-batch-profile.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench import small_batch as sb

__all__ = ["main"]

_PHASES: dict[str, tuple[str, str, str]] = {
    "offsets": ("unbounded.checkpoint.logs", "OffsetLog", "add"),
    "tasks_wait": ("unbounded.runtime.stage_runner", "PlannedTasks", "complete"),
    "stages": ("unbounded.runtime.stage_runner", "StageRunner", "run"),
    "sink": ("unbounded.sinks.files", "FileSink", "add_batch"),
    "commit": ("unbounded.checkpoint.checksum", "PreparedEntry", "publish"),
    "progress": ("unbounded.runtime.execution", "StreamExecution", "record_progress"),
    "tasks_result": ("unbounded.executors.local", "_Futures", "result"),
    "start_tasks": ("unbounded.runtime.microbatch", "MicroBatchExecution", "_start_tasks"),
    "read_ahead": ("unbounded.runtime.microbatch", "MicroBatchExecution", "_read_ahead"),
    "release": ("unbounded.runtime.microbatch", "MicroBatchExecution", "_release_committed"),
    "commit_prepare": ("unbounded.checkpoint.logs", "CommitLog", "prepare"),
    "fence": ("unbounded.checkpoint.epoch", "EpochFence", "check"),
    "run_batch": ("unbounded.runtime.microbatch", "MicroBatchExecution", "_run_batch"),
    "report": ("unbounded.runtime.progress", "ProgressReporter", "report"),
    "offsets_wait": ("unbounded.checkpoint.checksum", "FolderSync", "wait"),
    "latest_offset": ("unbounded.runtime.microbatch", "MicroBatchExecution", "_next_offsets"),
}


class _Phases:
    """Wall seconds per phase of the query thread's current trigger."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.by_batch: dict[int, dict[str, float]] = {}
        self.thread: int | None = None

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self.thread:
                return fn(*args, **kwargs)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[name] += time.perf_counter() - started
        return timed


def _install(phases: _Phases) -> None:
    import importlib

    from unbounded.runtime import microbatch

    for name, (module, cls, attr) in _PHASES.items():
        owner = getattr(importlib.import_module(module), cls, None)
        if owner is None:  # a checkout without it
            continue
        setattr(owner, attr, phases.wrap(name, getattr(owner, attr)))
    original = microbatch.MicroBatchExecution._trigger

    def trigger(self: Any, rerun: Any) -> bool:
        phases.thread = threading.get_ident()
        phases.current = defaultdict(float)
        batch_id = self.batch_id
        ran = original(self, rerun)
        if ran:
            phases.by_batch[batch_id] = dict(phases.current)
        return ran

    microbatch.MicroBatchExecution._trigger = trigger  # type: ignore[method-assign]


def _shape(query: str) -> Callable[[Any], Any]:
    if query == "stateless":
        return sb._stateless
    from bench.small_batch_query import windowed

    return lambda events: windowed(events, "timestamp")


def main(argv: list[str]) -> int:
    query, seconds = argv[0], float(argv[1])
    sb.RATE_SECONDS = seconds  # type: ignore[assignment]
    phases = _Phases()
    if "--no-fsync" in argv:
        os.fsync = lambda fd: None
    if "--phases" in argv:
        _install(phases)
    root = tempfile.mkdtemp(prefix="rate-latency-ab-", dir=os.environ.get("AB_TMP"))
    try:
        cpu0 = time.process_time()
        with sb._counted_fsyncs() as fsyncs:
            result = sb._rate_latency(root, query, _shape(query))
        result["cpu_ms_per_s"] = 1000 * (time.process_time() - cpu0) / seconds
        result["fsync_calls"] = fsyncs.calls
        result["fsync_ms"] = 1000 * fsyncs.seconds
        if phases.by_batch:
            keys = sorted({k for v in phases.by_batch.values() for k in v})
            if "--each" in argv:
                result["each"] = {b: {k: round(1000 * v, 1) for k, v in p.items()}
                                  for b, p in phases.by_batch.items()}
            result["phases_ms"] = {k: round(1000 * statistics.median(
                v.get(k, 0.0) for v in phases.by_batch.values()), 2) for k in keys}
        print(json.dumps(result))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
