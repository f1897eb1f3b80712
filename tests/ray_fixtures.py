"""A real multi-node Ray cluster on this machine for the Ray executor's tests, and the
windowed workload they run on it (JSON event files -> windowed counts -> Parquet).

The cluster (a head and two worker nodes, one CPU each) starts once per test module;
``ray_cluster`` brings it back to two live workers before each test, as a test may
remove one. Every failure the tests inject lives in a UDF built by a factory here, so
cloudpickle ships it by value to the Ray workers (nested functions are not importable).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib.util
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cloudpickle
import polars as pl
import pytest

__all__ = [
    "HAS_RAY",
    "HAS_RAY_CLIENT",
    "PER_FILE",
    "SKIP_REASON",
    "append_events",
    "expected_stateful",
    "expected_windows",
    "fail_first_attempts",
    "kafka_to_kafka_query",
    "kill_state_actor_once",
    "kill_worker_once",
    "kill_worker_once_mapping",
    "list_state_actors",
    "name_state_actor_node_once",
    "output_stateful",
    "output_windows",
    "ray_client_turn",
    "ray_cluster_fixture",
    "ray_cluster_module_fixture",
    "sleep_on_worker_once",
    "stall_first_copy",
    "stall_first_copy_fail_others",
    "start_newer_run_once",
    "stateful_query",
    "to_output",
    "windowed_query",
]

HAS_RAY = importlib.util.find_spec("ray") is not None
HAS_RAY_CLIENT = HAS_RAY and importlib.util.find_spec("grpc") is not None  # ray[client]
SKIP_REASON = "ray is not installed (pip install 'unbounded[ray]' or pip install ray)"
PER_FILE = 300
_STORE_BYTES = 80 * 1024 * 1024  # per node; Ray's minimum is 75 MiB
_BASE = datetime(2026, 11, 25, 10, 0, 0)
# Bounds of the waits for Ray's own processes, generous for a loaded 2-core machine: nodes
# registering, the head's Ray Client proxy listening, a client's own server starting (Ray
# waits 30 s for that by default) and another test run's Ray Client job ending.
_NODES_WAIT_S = 120.0
_PROXY_WAIT_S = 60.0
_CLIENT_SERVER_WAIT_S = 90
_CLIENT_TURN_WAIT_S = 600.0
# Ray workers cannot import this module (tests/ is not on their path): the probes and
# the helpers they call travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# Fixtures are registered under names that differ from the functions', so a test module
# importing them does not shadow the import with its parameters.
@pytest.fixture(scope="module", name="ray_cluster_module")
def ray_cluster_module_fixture() -> Iterator[Any]:
    """Head + two workers, 1 CPU each; this process is the driver connected to it. With
    ray[client] installed the head also serves Ray Client at ``cluster.client_address``."""
    if not HAS_RAY:
        pytest.skip(SKIP_REASON)
    import ray
    from ray.cluster_utils import Cluster

    head: dict[str, Any] = {"num_cpus": 1, "object_store_memory": _STORE_BYTES,
                            "include_dashboard": False}
    if HAS_RAY_CLIENT:
        head["ray_client_server_port"] = _free_port()
    with warnings.catch_warnings(), _patient_client_servers():
        # Ray leaves the client server's log files to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        cluster = Cluster(initialize_head=True, head_node_args=head)
        gc.collect()
    cluster.client_address = f"ray://127.0.0.1:{head['ray_client_server_port']}" \
        if HAS_RAY_CLIENT else None
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=_STORE_BYTES)
    cluster.wait_for_nodes(timeout=_NODES_WAIT_S)
    if HAS_RAY_CLIENT:
        _wait_for_client_proxy(cluster, head["ray_client_server_port"])
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def _patient_client_servers() -> Iterator[None]:
    """The head's processes (started inside) inherit a longer wait of the Ray Client proxy
    for each client's own server process, which can take over 30 s to start under load."""
    key = "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S"
    before = os.environ.get(key)
    os.environ[key] = str(_CLIENT_SERVER_WAIT_S)
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before


def _wait_for_client_proxy(cluster: Any, port: int) -> None:
    """Ray starts the head's Ray Client proxy without waiting for it to listen."""
    deadline = time.monotonic() + _PROXY_WAIT_S
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() > deadline:
            logs = cluster.head_node.get_logs_dir_path()
            raise RuntimeError(f"The head's Ray Client proxy was not listening on port {port} "
                               f"{_PROXY_WAIT_S:.0f}s after the cluster started (taken by "
                               f"another process?); see {logs}/ray_client_server.err")
        time.sleep(0.2)


@contextlib.contextmanager
def ray_client_turn() -> Iterator[None]:
    """Hold this machine's Ray Client turn while a ``ray://`` job connects and runs.

    Every Ray Client proxy gives each client a server process on the first port from 23000
    that a bind probe finds free, and the server binds it seconds later. Two test runs'
    clients connecting at once can both be given 23000, where gRPC's SO_REUSEPORT lets both
    servers listen: one cluster's proxy may then reach the other's server. Runs take turns.
    """
    path = os.path.join(tempfile.gettempdir(), "unbounded-ray-client.lock")
    with open(path, "a") as lock:
        deadline = time.monotonic() + _CLIENT_TURN_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Another Ray Client job on this machine held {path} for "
                                       f"{_CLIENT_TURN_WAIT_S:.0f}s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(name="ray_cluster")
def ray_cluster_fixture(ray_cluster_module: Any) -> Any:
    """The module's cluster with two live worker nodes (a test may have removed one)."""
    while len(ray_cluster_module.worker_nodes) < 2:
        ray_cluster_module.add_node(num_cpus=1, object_store_memory=_STORE_BYTES)
    ray_cluster_module.wait_for_nodes(timeout=_NODES_WAIT_S)
    return ray_cluster_module


def append_events(folder: Path, first: int, count: int, seed: int = 11) -> None:
    """Files ``first .. first+count-1`` of events half a second apart, a little out of
    order, each with a distinct modification time (the file source's order)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + first)
    for f in range(first, first + count):
        lines = []
        for i in range(PER_FILE):
            n = f * PER_FILE + i
            ts = _BASE + timedelta(seconds=n * 0.5 - rng.uniform(0, 20))
            lines.append(json.dumps({"id": n, "kind": "abc"[n % 3], "amount": n % 17 / 4,
                                     "ts": ts.strftime("%Y-%m-%d %H:%M:%S")}))
        path = folder / f"events-{f:03d}.json"
        path.write_text("\n".join(lines) + "\n")
        os.utime(path, (1_700_000_000 + f, 1_700_000_000 + f))


def windowed_query(spark: Any, workdir: Path, probe: Callable[..., Any] | None = None,
                   files_per_trigger: int = 2) -> Any:
    """Windowed counts of the event files to Parquet (availableNow); ``probe`` is a UDF
    of (id, amount) returning amount, where a test injects its failure."""
    from unbounded.sql import functions as F

    events = (spark.readStream.schema("id LONG, kind STRING, amount DOUBLE, ts STRING")
              .option("maxFilesPerTrigger", files_per_trigger).json(str(workdir / "input"))
              .withColumn("event_time", F.to_timestamp("ts")))
    if probe is not None:
        events = events.withColumn("amount", F.udf(probe, "double")("id", "amount"))
    counts = (events.withWatermark("event_time", "30 seconds")
              .groupBy(F.window("event_time", "1 minute"), "kind")
              .agg(F.count("*").alias("n"), F.sum("amount").alias("total")))
    return (counts.writeStream.outputMode("append").format("parquet")
            .option("checkpointLocation", str(workdir / "cp")).trigger(availableNow=True)
            .start(str(workdir / "out")))


DEDUP_KEYS = 1000  # ids k, k+1000, k+2000 share a key and fall in different batches
JOIN_KEYS = 400  # each id meets the 5 others of its key on the other side
SESSION_KEYS = 40  # a key's events are 20 s apart, give or take the 20 s of disorder
SESSION_GAP_S = 15


def _events(spark: Any, workdir: Path, probe: Callable[..., Any] | None,
            files_per_trigger: int) -> Any:
    from unbounded.sql import functions as F

    events = (spark.readStream.schema("id LONG, kind STRING, amount DOUBLE, ts STRING")
              .option("maxFilesPerTrigger", files_per_trigger).json(str(workdir / "input")))
    if probe is not None:
        events = events.withColumn("amount", F.udf(probe, "double")("id", "amount"))
    return events


def stateful_query(kind: str, spark: Any, workdir: Path,
                   probe: Callable[..., Any] | None = None) -> Any:
    """``dedup``: the first row of each key ``id % DEDUP_KEYS`` as (key, id);
    ``join``: the event files joined with themselves (a second stream) on
    ``id % JOIN_KEYS``, as (left id, right id); ``session``: events per session window
    (15 s gap, 30 s watermark) of key ``id % SESSION_KEYS`` as (key, count, start); all
    to Parquet (availableNow). The probe UDF runs in the (left) stream's tasks."""
    from unbounded.sql import functions as F

    events = _events(spark, workdir, probe, 2)
    if kind == "session":
        timed = events.withColumn("event_time", F.to_timestamp("ts")).withColumn(
            "key", F.col("id") % SESSION_KEYS).withWatermark("event_time", "30 seconds")
        out = (timed.groupBy(F.session_window("event_time", f"{SESSION_GAP_S} seconds"), "key")
               .agg(F.count("*").alias("n"))
               .select(F.col("key").alias("a"), F.col("n").alias("b"),
                       F.col("session_window.start").alias("s")))
    elif kind == "dedup":
        out = (events.withColumn("key", F.col("id") % DEDUP_KEYS).dropDuplicates(["key"])
               .select(F.col("key").alias("a"), F.col("id").alias("b")))
    else:
        left = events.select(F.col("id").alias("a"), (F.col("id") % JOIN_KEYS).alias("lk"),
                             "amount")  # kept, so the probe runs
        right = _events(spark, workdir, None, 2).select(
            F.col("id").alias("b"), (F.col("id") % JOIN_KEYS).alias("rk"))
        out = left.join(right, F.expr("lk = rk")).select("a", "b")
    return (out.writeStream.outputMode("append").format("parquet")
            .option("checkpointLocation", str(workdir / "cp")).trigger(availableNow=True)
            .start(str(workdir / "out")))


def expected_stateful(kind: str, workdir: Path) -> list[tuple[Any, ...]]:
    """What ``stateful_query`` gives over every event file, as a batch query would:
    each key's first id (files are read in order, ids ascend), or every pair of ids of
    one key."""
    events = pl.read_ndjson(str(workdir / "input" / "*.json"))
    if kind == "session":
        return _expected_sessions(events)
    ids = events["id"].to_list()
    if kind == "dedup":
        return sorted({i % DEDUP_KEYS: i for i in sorted(ids, reverse=True)}.items())
    by_key: dict[int, list[int]] = {}
    for i in ids:
        by_key.setdefault(i % JOIN_KEYS, []).append(i)
    return sorted((a, b) for same in by_key.values() for a in same for b in same)


def _expected_sessions(events: pl.DataFrame) -> list[tuple[Any, ...]]:
    """Sessions of each key (a row at most the gap after the one before, in event time,
    joins its session: Spark merges windows that touch) that the final watermark
    closed, as (key, count, start)."""
    timed = events.with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S"),
        (pl.col("id") % SESSION_KEYS).alias("a")).sort("a", "ts")
    gap = timedelta(seconds=SESSION_GAP_S)
    starts = (pl.col("ts").diff().over("a") > gap).fill_null(True).cum_sum()
    sessions = timed.with_columns(starts.alias("session")).group_by("a", "session").agg(
        pl.len().alias("b"), pl.col("ts").min().alias("s"), pl.col("ts").max().alias("last"))
    watermark = timed["ts"].max() - timedelta(seconds=30)
    closed = sessions.filter(pl.col("last") + gap <= watermark)
    return sorted(closed.select("a", "b", "s").iter_rows())


def output_stateful(workdir: Path) -> list[tuple[Any, ...]]:
    """Every row the Parquet sink committed (duplicates kept), as plain tuples."""
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.master("local[1]").create()
    try:
        rows = spark.read.parquet(str(workdir / "out")).collect()
    finally:
        spark.stop()
    return sorted(tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v
                        for v in r) for r in rows)


def expected_windows(workdir: Path) -> list[tuple[Any, ...]]:
    """The same aggregation as one batch query, keeping the windows the final watermark
    closes."""
    events = pl.read_ndjson(str(workdir / "input" / "*.json")).with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC"))
    watermark = events["ts"].max() - pl.duration(seconds=30)
    windows = events.with_columns(pl.col("ts").dt.truncate("1m").alias("start"))
    closed = windows.filter(pl.col("start") + pl.duration(minutes=1) <= watermark)
    grouped = closed.group_by("start", "kind").agg(pl.len().alias("n"),
                                                    pl.col("amount").sum().alias("total"))
    return sorted((r[0].replace(tzinfo=None), r[1], r[2], round(r[3], 6))
                  for r in grouped.iter_rows())


def output_windows(workdir: Path) -> list[tuple[Any, ...]]:
    """Every row the Parquet sink committed (duplicates kept, so they show), read as a
    Spark reader does: through the sink's _spark_metadata manifest, so the files of an
    attempt that died before its commit are not counted."""
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.master("local[1]").create()
    try:
        rows = spark.read.parquet(str(workdir / "out")).collect()
    finally:
        spark.stop()
    return sorted((r["window"]["start"].replace(tzinfo=None), r["kind"], r["n"],
                   round(r["total"], 6)) for r in rows)


def _claim(marker: Path) -> bool:
    """True for exactly one caller across processes: the one that creates ``marker``."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def kill_worker_once(marker: Path, from_id: int) -> Callable[[int, float], float]:
    """A UDF that SIGKILLs its own Ray worker process at the first row with id >=
    ``from_id`` (once, across every attempt); never the driver's process."""
    driver = os.getpid()

    def probe(row_id: int, amount: float) -> float:
        if row_id >= from_id and os.getpid() != driver and _claim(marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return amount

    return probe


def sleep_on_worker_once(marker: Path, from_id: int, head_node_id: str,
                         ) -> Callable[[int, float], float]:
    """A UDF that, at the first row with id >= ``from_id`` in a task on a worker node
    (not the head), writes that node's id to ``marker`` and sleeps, so the test can
    remove the node under the running task."""

    def probe(row_id: int, amount: float) -> float:
        if row_id < from_id or marker.exists():
            return amount
        import ray

        node = ray.get_runtime_context().get_node_id()
        if node != head_node_id and _claim(marker.with_suffix(".claim")):
            marker.write_text(node)
            time.sleep(60)
        return amount

    return probe


def fail_first_attempts(folder: Path, failures: int) -> Callable[[int, float], float]:
    """A UDF whose first ``failures`` calls on the row with id 0 raise (one marker file
    per attempt in ``folder``, so the attempts can be counted)."""

    def probe(row_id: int, amount: float) -> float:
        if row_id == 0:
            attempt = len(list(folder.iterdir())) + 1
            (folder / f"attempt-{attempt}-{os.getpid()}").touch()
            if attempt <= failures:
                raise RuntimeError(f"injected failure, attempt {attempt}")
        return amount

    return probe


def stall_first_copy(folder: Path, row_id: int) -> Callable[[int, float], float]:
    """A UDF that stalls (two minutes) the first task copy to reach ``row_id`` on a Ray
    worker, after writing its process id to ``folder/stalled``; every later copy that
    reaches the row leaves ``folder/copy-<pid>`` and goes on."""
    driver = os.getpid()

    def probe(found: int, amount: float) -> float:
        if found != row_id or os.getpid() == driver:
            return amount
        if _claim(folder / "stalled.claim"):
            (folder / "stalled").write_text(str(os.getpid()))
            time.sleep(120)
            (folder / "stalled-finished").touch()
        else:
            (folder / f"copy-{os.getpid()}").touch()
        return amount

    return probe


def kafka_to_kafka_query(spark: Any, bootstrap: str, topics: tuple[str, str], workdir: Path,
                         mapping: Callable[[str], str], per_trigger: int = 300) -> Any:
    """Kafka ``topics[0]`` -> each value through the UDF ``mapping`` -> Kafka
    ``topics[1]``, exactly-once (the sink's transactions), availableNow."""
    from unbounded.sql import functions as F

    rows = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topics[0]).option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(per_trigger)).load())
    text = F.col("value").cast("string")
    out = rows.select(F.udf(mapping, "string")(text).alias("value"))
    return (out.writeStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
            .option("topic", topics[1]).option("checkpointLocation", str(workdir / "cp"))
            .trigger(availableNow=True).start())


def to_output(value: str) -> str:
    """``in-<n>`` -> ``out-<n>``: the Kafka query's mapping."""
    return "out-" + value.removeprefix("in-")


def kill_worker_once_mapping(marker: Path, at_value: str) -> Callable[[str], str]:
    """A UDF mapping ``in-<n>`` to ``out-<n>`` that SIGKILLs its own Ray worker process
    at ``at_value`` (once, across every attempt); never the driver's process."""
    driver = os.getpid()

    def mapping(value: str) -> str:
        if value == at_value and os.getpid() != driver and _claim(marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return to_output(value)

    return mapping


def node_removal_mapping(marker: Path, from_number: int, head_node_id: str,
                         per_partition: int) -> Callable[[str], str]:
    """The Kafka query's mapping, with ``sleep_on_worker_once`` at the first record
    numbered ``>= from_number`` within its partition on a worker node."""
    probe = sleep_on_worker_once(marker, from_number, head_node_id)

    def mapping(value: str) -> str:
        probe(int(value.removeprefix("in-")) % per_partition, 0.0)
        return to_output(value)

    return mapping


def stalled_copy_mapping(folder: Path, number: int) -> Callable[[str], str]:
    """The Kafka query's mapping, with ``stall_first_copy`` at record ``in-<number>``."""
    probe = stall_first_copy(folder, number)

    def mapping(value: str) -> str:
        probe(int(value.removeprefix("in-")), 0.0)
        return to_output(value)

    return mapping


def kill_state_actor_once(marker: Path, from_id: int) -> Callable[[int, float], float]:
    """A UDF that, at the first row with id >= ``from_id`` in a task on a Ray worker,
    SIGKILLs the process of one of the query's state actors (once) and writes its pid
    to ``marker``."""
    driver = os.getpid()

    def probe(row_id: int, amount: float) -> float:
        if row_id < from_id or os.getpid() == driver or not _claim(marker.with_suffix(".claim")):
            return amount
        import ray

        named = _state_actors()
        actor = ray.get_actor(named[0]["name"], namespace=named[0]["namespace"])
        pid = ray.get(actor.pid.remote())
        marker.write_text(str(pid))
        os.kill(pid, signal.SIGKILL)
        return amount

    return probe


def stall_first_copy_fail_others(folder: Path, row_id: int, failures: int,
                                 timeout_s: float = 90.0) -> Callable[[int, float], float]:
    """A UDF under which the first task copy to reach ``row_id`` on a Ray worker stalls
    until ``failures`` later copies have raised at that row (each leaving
    ``folder/failed-<n>-<pid>``), then goes on; waiting for the failures rather than a
    fixed time keeps the test's outcome independent of how loaded the machine is.
    ``timeout_s`` bounds the stall."""
    driver = os.getpid()

    def probe(found: int, amount: float) -> float:
        if found != row_id or os.getpid() == driver:
            return amount
        if _claim(folder / "stalled.claim"):
            deadline = time.monotonic() + timeout_s
            while (len(list(folder.glob("failed-*"))) < failures
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            return amount
        failed = len(list(folder.glob("failed-*")))
        (folder / f"failed-{failed}-{os.getpid()}").touch()
        raise RuntimeError("injected failure of a speculative copy")

    return probe


def start_newer_run_once(checkpoint: Path, from_id: int) -> Callable[[int, float], float]:
    """A UDF that, at the first row with id >= ``from_id`` in a task on a Ray worker,
    takes a newer epoch of ``checkpoint``, as a second driver of the query starting."""
    driver = os.getpid()

    def probe(row_id: int, amount: float) -> float:
        if row_id >= from_id and os.getpid() != driver and _claim(checkpoint / "newer.claim"):
            from unbounded.checkpoint.epoch import EpochFence

            EpochFence.take(str(checkpoint), "a-newer-run").release()
        return amount

    return probe


def _state_actors() -> list[dict[str, str]]:
    from ray.util import list_named_actors

    from unbounded.executors.ray_hosts import ACTOR_PREFIX

    return [a for a in list_named_actors(all_namespaces=True)
            if a["name"].startswith(ACTOR_PREFIX)]


def list_state_actors(marker: Path, from_id: int) -> Callable[[int, float], float]:
    """A UDF that, at the first row with id >= ``from_id`` in a task on a Ray worker,
    writes to ``marker`` the names of the state actors alive in the cluster, one a line."""
    driver = os.getpid()

    def probe(row_id: int, amount: float) -> float:
        if row_id >= from_id and os.getpid() != driver and _claim(marker.with_suffix(".c")):
            marker.write_text("\n".join(sorted(a["name"] for a in _state_actors())))
        return amount

    return probe


def name_state_actor_node_once(marker: Path, from_id: int, head_node_id: str,
                               ) -> Callable[[int, float], float]:
    """A UDF that, at the first row with id >= ``from_id`` in a task on a Ray worker,
    writes to ``marker`` the id of a worker node (not the head) that runs a state actor,
    then waits a few seconds, so the test removes that node before the batch's fold."""
    driver = os.getpid()

    def probe(row_id: int, amount: float) -> float:
        if row_id < from_id or os.getpid() == driver or not _claim(marker.with_suffix(".c")):
            return amount
        import ray

        handles = [ray.get_actor(a["name"], namespace=a["namespace"]) for a in _state_actors()]
        nodes = [n for n in ray.get([h.node.remote() for h in handles]) if n != head_node_id]
        marker.write_text(nodes[0])
        time.sleep(5)
        return amount

    return probe
