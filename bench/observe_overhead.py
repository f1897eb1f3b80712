"""What watching a query costs (issue 11): the windowed workload, bare and observed.

The same query and files as ``bench/windowed.py`` run in fresh sessions, alternately:
*bare* (``spark.ui.enabled=false``, no listener, no metrics) and *observed* (the session's
UI publishing status, ``spark.sql.streaming.metricsEnabled=true`` feeding Prometheus and
a ``StreamingQueryListener`` receiving every event). The best run of each counts; the
ratio observed / bare time should stay under 1.02 (under 2% slower). Beside it, the
ratio of the process's CPU seconds (all threads, best of each): on a machine shared with
other work, wall time swings by more than the 2% measured, CPU time much less.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench import windowed
from bench.harness import (
    BenchContext,
    Measure,
    Workload,
    WorkloadResult,
    cached_dataset,
    stopwatch,
    warm_page_cache,
)

__all__ = ["MAX_SLOWDOWN", "WORKLOAD", "run"]

MAX_SLOWDOWN = 1.02
REPEATS = 5

_BARE = {"spark.ui.enabled": "false", "spark.sql.streaming.metricsEnabled": "false"}
_OBSERVED = {"spark.ui.enabled": "true", "spark.sql.streaming.metricsEnabled": "true"}


def _listener() -> Any:
    """A listener that touches every event it gets, as a real one would."""
    from unbounded.sql.streaming import StreamingQueryListener

    class Counting(StreamingQueryListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.rows = 0

        def onQueryStarted(self, event: Any) -> None:
            return None

        def onQueryProgress(self, event: Any) -> None:
            self.rows += event.progress.numInputRows

        def onQueryIdle(self, event: Any) -> None:
            return None

        def onQueryTerminated(self, event: Any) -> None:
            return None

    return Counting()


def _timed_run(conf: dict[str, str], input_dir: str, run_dir: str, observed: bool
               ) -> tuple[float, float, int]:
    """Wall and CPU seconds of one availableNow run in a fresh session, and the rows it
    read."""
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    builder = SparkSession.builder.appName("bench-observe")
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.create()
    try:
        if observed:
            spark.streams.addListener(_listener())
        cpu_before = time.process_time()
        with stopwatch() as elapsed:
            query = windowed._streaming_query(spark, F, input_dir,
                                              os.path.join(run_dir, "out"),
                                              os.path.join(run_dir, "ckpt"))
            query.awaitTermination()
        cpu = time.process_time() - cpu_before
        if query.exception() is not None:
            raise RuntimeError(str(query.exception()))
        return elapsed[0], cpu, sum(p["numInputRows"] for p in query.recentProgress)
    finally:
        spark.stop()


def _best(input_dir: str, run_dir: str) -> dict[str, tuple[float, float, int]]:
    """Bare and observed alternately; the least wall and the least CPU time of each
    (start-up falls on run 1), and the rows of the fastest run."""
    best: dict[str, tuple[float, float, int]] = {}
    for i in range(REPEATS):
        for name, conf in (("bare", _BARE), ("observed", _OBSERVED)):
            wall, cpu, rows = _timed_run(conf, input_dir,
                                         os.path.join(run_dir, f"{name}-{i}"),
                                         name == "observed")
            old = best.get(name, (wall, cpu, rows))
            best[name] = (min(old[0], wall), min(old[1], cpu),
                          rows if wall <= old[0] else old[2])
    return best


def run(ctx: BenchContext) -> WorkloadResult:
    input_dir, generated = cached_dataset(
        ctx.folder("windowed"), {"rows": ctx.rows, "files": windowed.FILES,
                                 "keys": windowed.KEYS},
        lambda path: windowed.generate(path, ctx.rows))
    warm_page_cache(input_dir)
    best = _best(input_dir, ctx.fresh_run_dir("observe_overhead"))
    bare_s, observed_s = best["bare"][0], best["observed"][0]
    bare_cpu, observed_cpu = best["bare"][1], best["observed"][1]
    ratio = observed_s / bare_s
    result = WorkloadResult("observe_overhead", params={
        "rows": ctx.rows, "repeats": REPEATS, "data_generated_now": generated,
        "bare_seconds": bare_s, "observed_seconds": observed_s,
        "bare_cpu_seconds": bare_cpu, "observed_cpu_seconds": observed_cpu,
        "load_average_1m": os.getloadavg()[0]})
    result.measures.append(Measure("windowed, bare (baseline)", ctx.rows / bare_s, "rows/s",
                                   1.0, note=f"{bare_s:.2f} s, best of {REPEATS}"))
    result.measures.append(Measure(
        "windowed, UI + metrics + listener", ctx.rows / observed_s, "rows/s", ratio,
        f"time <= {MAX_SLOWDOWN:.2f}x", ratio <= MAX_SLOWDOWN,
        f"{observed_s:.2f} s, best of {REPEATS}; ratio is observed / bare time"))
    result.measures.append(Measure(
        "CPU seconds, UI + metrics + listener", observed_cpu, "s", observed_cpu / bare_cpu,
        note=f"bare {bare_cpu:.2f} s; ratio is observed / bare CPU time (all threads), "
        f"steadier than wall time on a loaded machine (load {os.getloadavg()[0]:.1f})"))
    for name, (_, _, rows) in best.items():
        result.checks[f"{name} read all input"] = (
            "ok" if rows == ctx.rows else f"FAIL {rows:,} of {ctx.rows:,}")
    return result


# The windowed workload's own size: at 2M rows a run lasts 0.2 s and the wall-time ratio
# moved by +-10% between runs; at 10M (0.4 s a run) it is within a few percent.
WORKLOAD = Workload("observe_overhead", "windowed workload with and without UI, metrics and "
                    "a listener", 10_000_000, run)
