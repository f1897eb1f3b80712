"""The windowed workload (bench/windowed.py) on the local executor and on Ray (issue 13).

Same files, same query (5 s tumbling windows by key, 10 s watermark, append, Parquet
sink, ``availableNow``), three ways on the same cores:

- ``local[2]``: partition tasks on two threads of this process (the baseline);
- ``ray`` on a cluster of one worker node with 2 CPUs;
- ``ray`` on a cluster of two worker nodes with 1 CPU each, with the state partitions
  in Ray actors (the default) and, for comparison, on the driver.

Each cluster (``ray.cluster_utils.Cluster``; its head has no CPUs, so every task runs on
a worker node) is started once; in that window the query runs ``REPEATS`` times in each
variant's session, ``local[2]`` included, one variant after the other in turn (a loaded
machine's load drifts within a minute: a baseline measured before the clusters started
moved the ratios by 0.5x between runs). The fastest run of each counts, so the workers'
and the state actors' start-up (processes importing Polars and the engine) falls on the
first, whose time the note shows. Ray's workers run at the baseline's priority
(``WORKER_NICENESS``). Reported: rows/s of each, the ratio to the same window's
``local[2]`` (aim >= 0.7x) and the per-batch overhead Ray adds,
``(best Ray time - best local time) / batches`` (aim < 20 ms), beside the median
round trip of one batch's worth of trivial Ray tasks (Ray's fixed cost per batch) and of
one batch's calls to the state actors for Spark's default 200 state partitions (one call
per actor carrying all its partitions; the note shows one call per partition, as before).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import statistics
from collections.abc import Iterator
from typing import Any

import polars as pl

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

__all__ = ["WORKLOAD", "run"]

REPEATS = 5
LOCAL = "local[2]"
SPARK_PARTITIONS = 200  # spark.sql.shuffle.partitions' default
TARGET_RATIO = 0.7
TARGET_OVERHEAD_MS = 20.0
_STORE_BYTES = 256 * 1024 * 1024
# Ray's workers run at nice 15 by default; local[2]'s threads run at the driver's 0. On a
# machine shared with other work the workers would then get a fraction of the CPU the
# baseline gets, which measures the neighbours, not Ray: they run at 0 here, as on a
# cluster whose nodes run nothing else (UNBOUNDED_BENCH_RAY_NICENESS=15 for Ray's default).
WORKER_NICENESS = int(os.environ.get("UNBOUNDED_BENCH_RAY_NICENESS", "0"))
_NICENESS_VAR = "RAY_worker_niceness"
# State partitions folded on the driver instead of in Ray actors (the default).
_DRIVER_STATE = {"spark.unbounded.ray.stateActors": "false"}


def _session(master: str, conf: dict[str, str]) -> Any:
    from unbounded.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName("bench-windowed-ray")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.enabled", "false"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.create()


def _query_run(spark: Any, input_dir: str, run_dir: str) -> dict[str, Any]:
    """One availableNow run of the windowed query in ``spark``."""
    from unbounded.sql import functions as F

    with stopwatch() as elapsed:
        query = windowed._streaming_query(spark, F, input_dir, os.path.join(run_dir, "out"),
                                          os.path.join(run_dir, "ckpt"))
        query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    frame = pl.from_arrow(spark.read.parquet(os.path.join(run_dir, "out")).toArrow())
    return {"seconds": elapsed[0], "batches": len(query.recentProgress),
            "input_rows": sum(p["numInputRows"] for p in query.recentProgress),
            "windows": windowed._normalise(frame)}  # type: ignore[arg-type]


def _alternating(variants: dict[str, tuple[str, dict[str, str]]], input_dir: str,
                 run_dir: str) -> dict[str, dict[str, Any]]:
    """The fastest of ``REPEATS`` queries of each variant (name: master, settings), each
    in its own session, the variants taking turns (the first query of a Ray session also
    starts Ray's worker processes and its state actors; its time is kept beside)."""
    sessions = {name: _session(master, conf) for name, (master, conf) in variants.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    try:
        for i in range(REPEATS):
            for n, (name, spark) in enumerate(sessions.items()):
                runs[name].append(_query_run(spark, input_dir,
                                             os.path.join(run_dir, f"{n}-{i}")))
    finally:
        for spark in sessions.values():
            spark.stop()
    return {name: {**min(mine, key=lambda r: r["seconds"]),
                   "first_seconds": mine[0]["seconds"]} for name, mine in runs.items()}


def _on_cluster(nodes: int, cpus_per_node: int, input_dir: str, run_dir: str,
                variants: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """The best run of each variant (settings) on a fresh cluster of ``nodes`` worker
    nodes; this process drives."""
    import ray
    from ray.cluster_utils import Cluster

    with _workers_niceness(WORKER_NICENESS):
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "object_store_memory": _STORE_BYTES, "include_dashboard": False})
    try:
        with _workers_niceness(WORKER_NICENESS):
            for _ in range(nodes):
                cluster.add_node(num_cpus=cpus_per_node, object_store_memory=_STORE_BYTES)
        cluster.wait_for_nodes()
        _connect(cluster.address)
        bests = _alternating({LOCAL: (LOCAL, {}), **{name: ("ray", conf) for name, conf
                                                      in variants.items()}},
                             input_dir, run_dir)
        dispatch_ms = _dispatch_ms(windowed.FILES_PER_TRIGGER)
        host_calls_ms = _host_calls_ms(SPARK_PARTITIONS)
        for best in bests.values():
            best["dispatch_ms"], best["host_calls_ms"] = dispatch_ms, host_calls_ms
        return bests
    finally:
        ray.shutdown()
        cluster.shutdown()


def _connect(address: str) -> None:
    """Connect as the engine does (``executors.ray.connect``, which sets this driver's
    inline size); plain ``ray.init`` for an engine without it (an A/B baseline)."""
    import ray

    from unbounded.executors import ray as ray_executor

    connect = getattr(ray_executor, "connect", None)
    if connect is None:
        ray.init(address=address, logging_level="WARNING")
    else:
        connect(address)


@contextlib.contextmanager
def _workers_niceness(niceness: int) -> Iterator[None]:
    """Ray's processes started inside run their workers at ``niceness`` (Ray's own
    default is 15, below every other process of a shared machine)."""
    before = os.environ.get(_NICENESS_VAR)
    os.environ[_NICENESS_VAR] = str(niceness)
    try:
        yield
    finally:
        if before is None:
            del os.environ[_NICENESS_VAR]
        else:
            os.environ[_NICENESS_VAR] = before


def _dispatch_ms(tasks: int, rounds: int = 50) -> float:
    """Median time for the Ray executor to run ``tasks`` trivial tasks and return their
    results: the fixed cost Ray puts on each batch, without the work."""
    from unbounded.executors.base import ShippableTask
    from unbounded.executors.ray import RayExecutor

    executor, trivial = RayExecutor(None, 4, 2), ShippableTask(len)
    times = []
    try:
        for _ in range(rounds):
            with stopwatch() as elapsed:
                executor.map(trivial, [b"x"] * tasks)
            times.append(elapsed[0] * 1000)
    finally:
        executor.shutdown()
    return statistics.median(times)


def _host_calls_ms(partitions: int, rounds: int = 30) -> tuple[float, float]:
    """Median time of one batch's calls (trivial ones) to the state actors for
    ``partitions`` state partitions: as ``RayHosts.map`` sends them (one call per actor)
    and one call per partition."""
    import ray

    from unbounded.executors.base import HostCall
    from unbounded.executors.ray_hosts import HostPool

    pool = HostPool(4)
    try:
        hosts = pool.hosts(partitions)
        # builtins, which every worker unpickles: the resource is int() = 0, the call abs
        calls = [HostCall(p, f"p{p}", int, abs) for p in range(partitions)]
        hosts.map(calls)  # the actors start and open their resources
        grouped, single = [], []
        for _ in range(rounds):
            with stopwatch() as elapsed:
                hosts.map(calls)
            grouped.append(elapsed[0] * 1000)
            with stopwatch() as elapsed:  # one call per partition (prepare's path)
                ray.get(hosts._submit(calls))
            single.append(elapsed[0] * 1000)
    finally:
        pool.shutdown()
    return statistics.median(grouped), statistics.median(single)


def _measure(result: WorkloadResult, name: str, run: dict[str, Any], rows: int,
             local: dict[str, Any] | None, expected: pl.DataFrame) -> None:
    rate = rows / run["seconds"]
    note = (f"{run['seconds']:.2f} s, {run['batches']} batches; first query "
            f"{run['first_seconds']:.2f} s")
    if local is None:
        result.measures.append(Measure(name, rate, "rows/s", 1.0, note=note))
    else:
        ratio = rate / (rows / local["seconds"])
        result.measures.append(Measure(name, rate, "rows/s", ratio, f">= {TARGET_RATIO}x",
                                       ratio >= TARGET_RATIO, note))
        overhead_ms = (run["seconds"] - local["seconds"]) * 1000 / max(run["batches"], 1)
        result.measures.append(Measure(f"{name}: per-batch overhead", overhead_ms, "ms",
                                       None, f"< {TARGET_OVERHEAD_MS:.0f} ms",
                                       overhead_ms < TARGET_OVERHEAD_MS,
                                       "(Ray time - local time) / batches"))
        result.measures.append(Measure(
            f"{name}: dispatch of a batch's tasks", run["dispatch_ms"], "ms",
            note=f"median round trip of {windowed.FILES_PER_TRIGGER} trivial Ray tasks"))
        grouped, single = run["host_calls_ms"]
        result.measures.append(Measure(
            f"{name}: state actor calls of a batch, {SPARK_PARTITIONS} partitions", grouped,
            "ms", note=f"one call per actor; one per partition: {single:.1f} ms"))
    result.checks[f"{name} closed windows == polars"] = windowed.compare_windows(
        run["windows"], expected)
    result.checks[f"{name} read all input"] = (
        "ok" if run["input_rows"] == rows else f"FAIL {run['input_rows']:,} of {rows:,}")
    result.params[name] = {k: v for k, v in run.items() if k != "windows"}


def run(ctx: BenchContext) -> WorkloadResult:
    if importlib.util.find_spec("ray") is None:
        return WorkloadResult("windowed_ray", status="skipped",
                              error="ray is not installed (pip install -e '.[ray]')")
    input_dir, generated = cached_dataset(  # the windowed workload's files, shared
        ctx.folder("windowed"), {"rows": ctx.rows, "files": windowed.FILES,
                                 "keys": windowed.KEYS},
        lambda path: windowed.generate(path, ctx.rows))
    warm_page_cache(input_dir)
    run_dir = ctx.fresh_run_dir("windowed-ray")
    _, expected = windowed._polars(input_dir, os.path.join(run_dir, "polars.parquet"))
    result = WorkloadResult("windowed_ray", params={
        "rows": ctx.rows, "files": windowed.FILES, "repeats": REPEATS,
        "ray_worker_niceness": WORKER_NICENESS,
        "data_generated_now": generated, "closed_windows": expected.height})
    clusters: list[tuple[int, int, dict[str, dict[str, str]]]] = [
        (1, 2, {"ray, 1 worker node x 2 CPUs": {}}),
        (2, 1, {"ray, 2 worker nodes x 1 CPU": {},
                "ray, 2 worker nodes x 1 CPU, state on the driver": _DRIVER_STATE})]
    for nodes, cpus, variants in clusters:
        runs = _on_cluster(nodes, cpus, input_dir, os.path.join(run_dir, f"ray{nodes}"),
                           variants)
        local = runs.pop(LOCAL)
        _measure(result, f"{LOCAL} (baseline, {nodes}-node window)", local, ctx.rows, None,
                 expected)
        for name, ray_run in runs.items():
            _measure(result, name, ray_run, ctx.rows, local, expected)
    return result


WORKLOAD = Workload("windowed_ray", "the windowed workload on local[2] and on Ray "
                    "(1 and 2 worker nodes)", 10_000_000, run)
