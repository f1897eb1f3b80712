"""The Ray executor on a real three-node Ray cluster on this machine: the same query and
checkpoint as under the local executor, task retry after an error, a SIGKILLed worker
process, a removed worker node and speculation of a stalled task, each ending with the
batch query's rows (0 lost, 0 duplicated). Skipped when ray is not installed; the longer
randomized runs need UNBOUNDED_RAY_LONG=1."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter

import pytest

from crash_runs import run_job, run_killed_at
from ray_fixtures import (
    HAS_RAY,
    HAS_RAY_CLIENT,
    PER_FILE,
    SKIP_REASON,
    append_events,
    expected_stateful,
    expected_windows,
    fail_first_attempts,
    kafka_to_kafka_query,
    kill_state_actor_once,
    kill_worker_once,
    kill_worker_once_mapping,
    list_state_actors,
    name_state_actor_node_once,
    node_removal_mapping,
    output_stateful,
    output_windows,
    ray_client_turn,
    ray_cluster_fixture,  # noqa: F401
    ray_cluster_module_fixture,  # noqa: F401
    sleep_on_worker_once,
    stall_first_copy,
    stall_first_copy_fail_others,
    stalled_copy_mapping,
    start_newer_run_once,
    stateful_query,
    windowed_query,
)
from unbounded.errors import StreamingQueryException
from unbounded.sql import SparkSession
from unbounded.testing.faults import FAULT_POINTS

pytestmark = pytest.mark.skipif(not HAS_RAY, reason=SKIP_REASON)
LONG = os.environ.get("UNBOUNDED_RAY_LONG") == "1"
# Tasks in flight, and the sink's files written but not committed; every point when LONG.
DRIVER_KILL_POINTS = FAULT_POINTS if LONG else ("after-offset-write", "mid-sink-write")
JOB = os.path.join(os.path.dirname(__file__), "ray_job.py")
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _session(master: str, **conf: str) -> SparkSession:
    builder = SparkSession.builder.master(master).config("spark.sql.shuffle.partitions", "2")
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.create()


def _run(workdir, master: str, probe=None, **conf: str) -> None:
    spark = _session(master, **conf)
    try:
        windowed_query(spark, workdir, probe).awaitTermination(120)
    finally:
        spark.stop()


def _executor_kind(spark: SparkSession) -> str:
    return type(spark._executor()).__name__


def test_master_ray_runs_partition_tasks_on_the_cluster(ray_cluster, tmp_path):
    spark = _session("ray")
    try:
        assert _executor_kind(spark) == "RayExecutor"
        assert spark._executor().max_failures == 4  # Spark's default on a cluster
    finally:
        spark.stop()
    import ray

    assert ray.is_initialized(), "a session that joined the runtime leaves it running"


def test_windowed_query_on_ray_equals_the_batch_query(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    _run(tmp_path, "ray")
    expected = expected_windows(tmp_path)
    assert len(expected) > 20
    assert output_windows(tmp_path) == expected


def test_checkpoint_written_locally_resumes_on_ray_and_back(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 3)
    _run(tmp_path, "local[2]")
    append_events(tmp_path / "input", 3, 3)
    _run(tmp_path, "ray")
    append_events(tmp_path / "input", 6, 3)
    _run(tmp_path, "local[*]")
    batches = sorted(int(p.name) for p in (tmp_path / "cp" / "commits").iterdir()
                     if p.name.isdigit())
    assert batches == list(range(len(batches))) and len(batches) >= 5
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_a_task_that_raises_is_retried_with_the_same_partition(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 4)
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    _run(tmp_path, "ray", fail_first_attempts(attempts, 3))  # 4 attempts allowed
    assert len(list(attempts.iterdir())) == 4
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_the_batch_fails_with_the_tasks_error_after_max_failures(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 2)
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    spark = _session("ray", **{"spark.task.maxFailures": "2"})
    try:
        query = windowed_query(spark, tmp_path, fail_first_attempts(attempts, 5))
        with pytest.raises(StreamingQueryException) as failed:
            query.awaitTermination(120)
    finally:
        spark.stop()
    assert "injected failure, attempt 2" in str(failed.value)
    assert "spark.task.maxFailures=2" in "".join(_notes(failed.value))
    assert len(list(attempts.iterdir())) == 2
    assert not (tmp_path / "cp" / "commits" / "0").exists()


def _notes(err: BaseException | None) -> list[str]:
    """The notes along a chain of causes (Ray's wrapper and its cause point at each
    other, so each error is visited once)."""
    notes: list[str] = []
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        notes += err.__dict__.get("__notes__", [])
        err = err.__cause__ or err.__dict__.get("cause")
    return notes


def test_a_worker_process_sigkilled_mid_batch_loses_and_duplicates_nothing(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    marker = tmp_path / "killed"
    _run(tmp_path, "ray", kill_worker_once(marker, from_id=700))  # in batch 1
    assert marker.exists(), "the probe never killed a worker"
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_without_retries_a_killed_worker_fails_the_batch_and_a_restart_completes_it(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    marker = tmp_path / "killed"
    spark = _session("ray", **{"spark.task.maxFailures": "1"})
    try:
        query = windowed_query(spark, tmp_path, kill_worker_once(marker, from_id=700))
        with pytest.raises(StreamingQueryException, match=r"(?i)worker|died|crash"):
            query.awaitTermination(120)
    finally:
        spark.stop()
    assert marker.exists()
    _run(tmp_path, "ray")  # resumes from the offset log: batch 1 runs again
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_a_worker_node_removed_mid_run_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    marker = tmp_path / "node"
    head = ray_cluster.head_node.node_id
    remover = threading.Thread(target=_remove_node_named_in, args=(ray_cluster, marker))
    remover.start()
    try:
        _run(tmp_path, "ray", sleep_on_worker_once(marker, 700, head))
    finally:
        remover.join(90)
    assert len(ray_cluster.worker_nodes) == 1, "the node under the task was not removed"
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def _remove_node_named_in(cluster, marker, timeout_s: float = 60) -> None:
    """Wait for the probe to name its node, then remove that node (not gracefully)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            node_id = marker.read_text()
            node = next(n for n in cluster.worker_nodes if n.node_id == node_id)
            cluster.remove_node(node, allow_graceful=False)
            return
        time.sleep(0.05)


def test_speculation_gives_a_stalled_task_a_second_copy_whose_result_wins(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    probes = tmp_path / "probes"
    probes.mkdir()
    _run(tmp_path, "ray", stall_first_copy(probes, 700), **{"spark.speculation": "true"})
    copies = [p for p in probes.iterdir() if p.name.startswith("copy-")]
    assert len(copies) == 1, "exactly one speculative copy reached the stalled row"
    stalled = int((probes / "stalled").read_text())
    assert _exits(stalled, timeout_s=30), "the losing copy's worker was not killed"
    assert not (probes / "stalled-finished").exists()
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_a_state_actor_killed_mid_run_is_restored_from_the_checkpoint(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 8)
    marker = tmp_path / "actor"
    _run(tmp_path, "ray", kill_state_actor_once(marker, from_id=1300))  # batch 2's tasks
    assert marker.exists(), "the probe found no state actor to kill"
    assert _exits(int(marker.read_text()), timeout_s=30)
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_the_node_of_a_state_actor_removed_mid_run_loses_and_duplicates_nothing(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 8)
    marker = tmp_path / "node"
    probe = name_state_actor_node_once(marker, 1300, ray_cluster.head_node.node_id)
    remover = threading.Thread(target=_remove_node_named_in, args=(ray_cluster, marker))
    remover.start()
    try:
        _run(tmp_path, "ray", probe)
    finally:
        remover.join(90)
    assert len(ray_cluster.worker_nodes) == 1, "the state actor's node was not removed"
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def _run_stateful(kind: str, workdir, master: str, probe=None) -> None:
    spark = _session(master)
    try:
        stateful_query(kind, spark, workdir, probe).awaitTermination(120)
    finally:
        spark.stop()


@pytest.mark.parametrize("kind", ["dedup", "join"])
def test_dedup_and_join_state_actor_killed_mid_run_is_restored_from_the_checkpoint(
        ray_cluster, tmp_path, kind):
    append_events(tmp_path / "input", 0, 8)
    marker = tmp_path / "actor"  # the operator's own actors: no other state in the query
    _run_stateful(kind, tmp_path, "ray", kill_state_actor_once(marker, from_id=1300))
    assert marker.exists(), "the probe found no state actor to kill"
    assert _exits(int(marker.read_text()), timeout_s=30)
    assert output_stateful(tmp_path) == expected_stateful(kind, tmp_path)


@pytest.mark.parametrize("kind", ["dedup", "join", "session"])
def test_dedup_join_and_session_state_moves_from_the_driver_to_actors_and_back(
        ray_cluster, tmp_path, kind):
    append_events(tmp_path / "input", 0, 3)
    _run_stateful(kind, tmp_path, "local[2]")
    append_events(tmp_path / "input", 3, 3)
    marker = tmp_path / "actors"
    _run_stateful(kind, tmp_path, "ray", list_state_actors(marker, from_id=900))
    append_events(tmp_path / "input", 6, 3)
    _run_stateful(kind, tmp_path, "local[2]")
    assert len(marker.read_text().split()) == 2  # one actor per state partition
    assert output_stateful(tmp_path) == expected_stateful(kind, tmp_path)


@pytest.mark.parametrize(("setting", "actors"), [("true", 2), ("false", 0)])
def test_state_partitions_live_in_one_actor_each_unless_state_actors_are_off(
        ray_cluster, tmp_path, setting, actors):
    append_events(tmp_path / "input", 0, 4)
    marker = tmp_path / "actors"  # two state partitions, three CPUs: two actors
    _run(tmp_path, "ray", list_state_actors(marker, from_id=700),
         **{"spark.unbounded.ray.stateActors": setting})
    assert len(marker.read_text().split()) == actors
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_a_speculative_copy_that_fails_leaves_the_slow_original_to_finish(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    probes = tmp_path / "probes"
    probes.mkdir()
    _run(tmp_path, "ray", stall_first_copy_fail_others(probes, 700, failures=4),
         **{"spark.speculation": "true"})
    assert len(list(probes.glob("failed-*"))) == 4  # the copy's 4 attempts, all raised
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_state_actors_of_a_driver_that_a_newer_run_replaced_write_no_state(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 6)
    (tmp_path / "cp").mkdir()
    spark = _session("ray", **{"spark.unbounded.streaming.pipelineBatches": "false"})
    try:  # row 700 is in batch 1: its fold would write state version 2
        query = windowed_query(spark, tmp_path, start_newer_run_once(tmp_path / "cp", 700))
        with pytest.raises(StreamingQueryException, match="without writing state version 2"):
            query.awaitTermination(120)
    finally:
        spark.stop()
    state = tmp_path / "cp" / "state" / "0"
    assert sorted(p.name for p in state.rglob("*.delta")) == ["1.delta", "1.delta"]


def test_a_query_restarted_in_its_session_reuses_the_state_actors_and_resumes(
        ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 4)
    first, second = tmp_path / "first", tmp_path / "second"
    spark = _session("ray")
    try:
        windowed_query(spark, tmp_path, list_state_actors(first, 700)).awaitTermination(120)
        append_events(tmp_path / "input", 4, 4)
        windowed_query(spark, tmp_path, list_state_actors(second, 1300)).awaitTermination(120)
    finally:
        spark.stop()
    assert len(first.read_text().split()) == 2
    assert second.read_text() == first.read_text()  # the same two actors
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_kafka_to_kafka_on_ray_with_a_worker_sigkilled_mid_batch_commits_each_record_once(
        ray_cluster, kafka_bootstrap, tmp_path):
    pytest.importorskip("confluent_kafka")
    from unbounded.testing.kafka_log import read_log  # the raw-log judge (see its docstring)
    source, sink = _kafka_topics(kafka_bootstrap, 600)
    marker = tmp_path / "killed"
    spark = _session("ray")
    try:  # in-800: partition 1, offset 200, in the second batch (150 per partition)
        kafka_to_kafka_query(spark, kafka_bootstrap, (source, sink), tmp_path,
                             kill_worker_once_mapping(marker, "in-800")).awaitTermination(120)
    finally:
        spark.stop()
    assert marker.exists(), "the mapping never killed a worker"
    committed = Counter(v.decode() for v in read_log(kafka_bootstrap, sink, 2).committed)
    assert committed == Counter(f"out-{n}" for n in range(1200))
    assert len(list((tmp_path / "cp" / "commits").iterdir())) >= 4


@pytest.mark.parametrize("point", DRIVER_KILL_POINTS)
def test_kafka_to_kafka_on_ray_with_the_driver_sigkilled_commits_each_record_once(
        ray_cluster, kafka_bootstrap, tmp_path, python_env, point):
    pytest.importorskip("confluent_kafka")
    from unbounded.testing.kafka_log import read_log

    source, sink = _kafka_topics(kafka_bootstrap, 600)
    cmd = [sys.executable, JOB, str(tmp_path), "kafka", kafka_bootstrap, source, sink]
    env = _job_env(ray_cluster, python_env)
    run_killed_at(cmd, env, point, 1)
    finished = run_job(cmd, env)
    assert finished.returncode == 0, finished.stderr
    committed = Counter(v.decode() for v in read_log(kafka_bootstrap, sink, 2).committed)
    assert committed == Counter(f"out-{n}" for n in range(1200))


def _kafka_topics(bootstrap: str, per_partition: int) -> tuple[str, str]:
    """A source topic of two partitions holding in-0 .. in-<2n-1>, and an empty sink."""
    from unbounded.testing.broker import create_topic, produce_records, unique_topic

    source, sink = unique_topic("ray-in"), unique_topic("ray-out")
    create_topic(bootstrap, source, partitions=2)
    create_topic(bootstrap, sink, partitions=2)
    for p in range(2):
        values = [f"in-{p * per_partition + i}" for i in range(per_partition)]
        produce_records(bootstrap, source, values, partition=p)
    return source, sink


def _exits(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _job_env(cluster, python_env) -> dict[str, str]:
    return {**python_env, "RAY_ADDRESS": cluster.address,
            "PYTHONPATH": TESTS + os.pathsep + python_env["PYTHONPATH"]}


# How Ray's proxy reports that the per-client server process exited at launch: its own
# message, or, when the exit falls between its poll() and its psutil cmdline() read
# (proxier.start_specific_server), psutil's ZombieProcess from that read.
_CLIENT_SERVER_DIED = ("Starting Ray client server failed", "psutil.ZombieProcess")


@pytest.mark.skipif(not HAS_RAY_CLIENT, reason="ray:// needs pip install 'ray[client]'")
def test_master_ray_url_runs_the_query_through_ray_client(ray_cluster, tmp_path, python_env):
    append_events(tmp_path / "input", 0, 4)
    env = _job_env(ray_cluster, python_env)
    del env["RAY_ADDRESS"]  # the master URL alone names the cluster
    with ray_client_turn():  # Ray gives every client on this machine a port from 23000
        finished = run_job([sys.executable, JOB, str(tmp_path), ray_cluster.client_address],
                           env)
        if finished.returncode != 0 and any(m in finished.stderr for m in _CLIENT_SERVER_DIED):
            # Ray's proxy starts a server process per client; in a full test run on this
            # 2-core machine that process has exited at launch with empty logs (inside
            # Ray; the same test alone passes). The job connects again once: nothing ran.
            finished = run_job([sys.executable, JOB, str(tmp_path),
                                ray_cluster.client_address], env)
    assert finished.returncode == 0, finished.stderr
    assert output_windows(tmp_path) == expected_windows(tmp_path)


@pytest.mark.parametrize("point", DRIVER_KILL_POINTS)
def test_a_driver_sigkilled_at_each_batch_step_resumes_on_ray_with_each_window_once(
        ray_cluster, tmp_path, python_env, point):
    append_events(tmp_path / "input", 0, 6)
    env = _job_env(ray_cluster, python_env)
    cmd = [sys.executable, JOB, str(tmp_path)]
    run_killed_at(cmd, env, point, 1)
    finished = run_job(cmd, env)
    assert finished.returncode == 0, finished.stderr
    assert output_windows(tmp_path) == expected_windows(tmp_path)


@pytest.mark.skipif(not LONG, reason="long randomized run: set UNBOUNDED_RAY_LONG=1")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_worker_kills_at_random_rows_lose_and_duplicate_nothing(ray_cluster, tmp_path, seed):
    rng = random.Random(seed)
    for round_ in range(3):
        append_events(tmp_path / "input", round_ * 4, 4, seed=seed)
        first_id = round_ * 4 * PER_FILE + rng.randrange(0, 4 * PER_FILE)
        _run(tmp_path, "ray", kill_worker_once(tmp_path / f"killed-{round_}", first_id))
    assert output_windows(tmp_path) == expected_windows(tmp_path)


@pytest.mark.skipif(not LONG, reason="long randomized run: set UNBOUNDED_RAY_LONG=1")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_state_actor_kills_at_random_rows_lose_and_duplicate_nothing(
        ray_cluster, tmp_path, seed):
    rng = random.Random(seed)
    for round_ in range(3):
        append_events(tmp_path / "input", round_ * 4, 4, seed=seed)
        first_id = round_ * 4 * PER_FILE + rng.randrange(0, 4 * PER_FILE)
        marker = tmp_path / f"actor-{round_}"
        _run(tmp_path, "ray", kill_state_actor_once(marker, first_id))
        assert marker.exists(), f"round {round_}: no state actor was killed"
    assert output_windows(tmp_path) == expected_windows(tmp_path)


def test_kafka_to_kafka_on_ray_with_a_worker_node_removed_mid_batch_commits_each_record_once(
        ray_cluster, kafka_bootstrap, tmp_path):
    """(b) for the Kafka query: the node under a running task is removed (not
    gracefully); its tasks run again elsewhere and the transactional sink commits
    each record once."""
    pytest.importorskip("confluent_kafka")
    from unbounded.testing.kafka_log import read_log

    source, sink = _kafka_topics(kafka_bootstrap, 600)
    marker = tmp_path / "node"
    # from the second batch of either partition (150 records per partition and batch)
    mapping = node_removal_mapping(marker, 300, ray_cluster.head_node.node_id, 600)
    remover = threading.Thread(target=_remove_node_named_in, args=(ray_cluster, marker))
    remover.start()
    spark = _session("ray")
    try:
        kafka_to_kafka_query(spark, kafka_bootstrap, (source, sink), tmp_path,
                             mapping).awaitTermination(150)
    finally:
        spark.stop()
        remover.join(90)
    assert len(ray_cluster.worker_nodes) == 1, "the node under the task was not removed"
    committed = Counter(v.decode() for v in read_log(kafka_bootstrap, sink, 2).committed)
    assert committed == Counter(f"out-{n}" for n in range(1200))


def test_kafka_to_kafka_on_ray_with_speculation_commits_only_the_winning_copy(
        ray_cluster, kafka_bootstrap, tmp_path):
    """(e) for the Kafka query: a stalled task gets a speculative copy; the copy's
    records are the ones committed, the stalled original's never reach the topic."""
    pytest.importorskip("confluent_kafka")
    from unbounded.testing.kafka_log import read_log

    source, sink = _kafka_topics(kafka_bootstrap, 600)
    probes = tmp_path / "probes"
    probes.mkdir()
    mapping = stalled_copy_mapping(probes, 700)
    spark = _session("ray", **{"spark.speculation": "true"})
    try:
        kafka_to_kafka_query(spark, kafka_bootstrap, (source, sink), tmp_path,
                             mapping).awaitTermination(150)
    finally:
        spark.stop()
    assert len([p for p in probes.iterdir() if p.name.startswith("copy-")]) == 1
    stalled = int((probes / "stalled").read_text())
    assert _exits(stalled, timeout_s=30), "the losing copy's worker was not killed"
    assert not (probes / "stalled-finished").exists()
    log = read_log(kafka_bootstrap, sink, 2)
    assert Counter(v.decode() for v in log.committed) == Counter(
        f"out-{n}" for n in range(1200))
