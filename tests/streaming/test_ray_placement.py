"""Partition tasks placed near their data on the three-node Ray cluster
(``executors/placement.py``): a Kafka partition is read on the same node batch after
batch, a file on the node of its path's hash in every run, and a node removed mid-run
leaves soft affinity to move its tasks (0 lost, 0 duplicated). The placement each task
asked for and the node it ran on are the executor's records."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import pytest

from ray_fixtures import (
    HAS_RAY,
    SKIP_REASON,
    append_events,
    expected_windows,
    kafka_to_kafka_query,
    output_windows,
    ray_cluster_fixture,  # noqa: F401
    ray_cluster_module_fixture,  # noqa: F401
    sleep_on_worker_once,
    to_output,
    windowed_query,
)
from unbounded.executors.base import LocalityKind
from unbounded.executors.placement import PlacementRecord
from unbounded.sql import SparkSession

pytestmark = pytest.mark.skipif(not HAS_RAY, reason=SKIP_REASON)


def _session() -> SparkSession:
    return (SparkSession.builder.master("ray")
            .config("spark.sql.shuffle.partitions", "2").create())


def _windowed_records(workdir, probe=None) -> list[PlacementRecord]:
    """The file tasks' placements of one windowed run (a fresh checkpoint and output)."""
    shutil.rmtree(workdir / "cp", ignore_errors=True)
    shutil.rmtree(workdir / "out", ignore_errors=True)
    spark = _session()
    try:
        windowed_query(spark, workdir, probe).awaitTermination(120)
        return [r for r in spark._executor().placement.records if r.kind is LocalityKind.FILE]
    finally:
        spark.stop()


def test_each_file_is_read_on_the_node_of_its_path_hash_in_every_run(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 8)
    first = _windowed_records(tmp_path)
    assert output_windows(tmp_path) == expected_windows(tmp_path)
    second = _windowed_records(tmp_path)
    assert output_windows(tmp_path) == expected_windows(tmp_path)
    files = sorted(str(p) for p in (tmp_path / "input").iterdir())
    assert sorted(r.key for r in first) == sorted(r.key for r in second) == files
    assert all(r.asked == r.ran for r in first + second)  # every node stayed alive
    assert {r.key: r.ran for r in first} == {r.key: r.ran for r in second}
    assert len({r.ran for r in first}) >= 2  # the hash spreads the files


def test_a_node_removed_mid_run_moves_its_files_and_loses_nothing(ray_cluster, tmp_path):
    append_events(tmp_path / "input", 0, 8)
    marker = tmp_path / "node"
    remover = threading.Thread(target=_remove_node_named_in, args=(ray_cluster, marker))
    remover.start()
    try:
        records = _windowed_records(
            tmp_path, sleep_on_worker_once(marker, 700, ray_cluster.head_node.node_id))
    finally:
        remover.join(90)
    assert len(ray_cluster.worker_nodes) == 1, "the node under the task was not removed"
    assert output_windows(tmp_path) == expected_windows(tmp_path)
    removed = marker.read_text()
    files = sorted(str(p) for p in (tmp_path / "input").iterdir())
    assert sorted(r.key for r in records) == files  # every file's task completed once
    late = [r for r in records if r.key > str(tmp_path / "input" / "events-003.json")]
    assert late and all(r.ran != removed for r in late)


def _remove_node_named_in(cluster, marker, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            node = next(n for n in cluster.worker_nodes if n.node_id == marker.read_text())
            cluster.remove_node(node, allow_graceful=False)
            return
        time.sleep(0.05)


def test_each_kafka_partition_is_read_on_one_node_batch_after_batch(
        ray_cluster, kafka_bootstrap, tmp_path):
    pytest.importorskip("confluent_kafka")
    from unbounded.testing.broker import create_topic, produce_records, unique_topic
    from unbounded.testing.kafka_log import read_log

    source, sink = unique_topic("ray-near-in"), unique_topic("ray-near-out")
    create_topic(bootstrap := kafka_bootstrap, source, partitions=3)
    create_topic(bootstrap, sink, partitions=1)
    for p in range(3):
        produce_records(bootstrap, source, [f"in-{p * 200 + i}" for i in range(200)],
                        partition=p)
    spark = _session()
    try:
        kafka_to_kafka_query(spark, bootstrap, (source, sink), tmp_path, to_output,
                             per_trigger=150).awaitTermination(120)
        records = [r for r in spark._executor().placement.records
                   if r.kind is LocalityKind.STREAM_PARTITION]
    finally:
        spark.stop()
    committed = Counter(v.decode() for v in read_log(bootstrap, sink, 1).committed)
    assert committed == Counter(f"out-{n}" for n in range(600))
    by_partition: dict[str, set[str]] = {}
    for r in records:
        by_partition.setdefault(r.key, set()).add(r.ran)
    assert sorted(by_partition) == [f"{source}:{p}" for p in range(3)]
    assert Counter(r.key for r in records)[f"{source}:0"] >= 3  # several batches
    assert all(len(nodes) == 1 for nodes in by_partition.values())
    assert len({n for nodes in by_partition.values() for n in nodes}) == 3  # one each
