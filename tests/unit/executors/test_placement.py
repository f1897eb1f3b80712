"""Placement of partition tasks near their data (``executors/placement.py``): a Kafka
partition goes back to the node that read it last, a file to its path's rendezvous node,
no node takes more than its CPU share of a batch, and a removed node's tasks move."""

from __future__ import annotations

import pytest

from unbounded.executors.base import Locality, LocalityKind
from unbounded.executors.placement import NodePlacement

FILE, STREAM = LocalityKind.FILE, LocalityKind.STREAM_PARTITION
THREE = {"a": 1.0, "b": 1.0, "c": 1.0}


def _files(*paths: str) -> list[Locality | None]:
    return [Locality(FILE, p) for p in paths]


def test_a_file_goes_to_the_same_node_in_every_placement():
    paths = [f"/data/f-{i:02d}.parquet" for i in range(12)]
    first = [NodePlacement().assign(_files(p), THREE)[0] for p in paths]
    again = [NodePlacement().assign(_files(p), THREE)[0] for p in paths]
    assert first == again
    assert set(first) == {"a", "b", "c"}  # the hash spreads files over the nodes


def test_removing_a_node_moves_only_its_files():
    paths = [f"/data/f-{i:02d}.parquet" for i in range(30)]
    before = {p: NodePlacement().assign(_files(p), THREE)[0] for p in paths}
    after = {p: NodePlacement().assign(_files(p), {"a": 1.0, "b": 1.0})[0] for p in paths}
    assert {p: n for p, n in after.items() if before[p] != "c"} == \
        {p: n for p, n in before.items() if n != "c"}
    assert {after[p] for p in paths if before[p] == "c"} <= {"a", "b"}


def test_no_node_takes_more_than_its_cpu_share_of_a_batch():
    placement = NodePlacement()
    nodes = placement.assign(_files(*(f"/d/{i}" for i in range(8))), {"a": 3.0, "b": 1.0})
    assert sorted(nodes.count(n) for n in "ab") == [2, 6]
    assert nodes.count("b") == 2


def test_a_stream_partition_returns_to_the_node_that_read_it_last():
    placement = NodePlacement()
    parts = [Locality(STREAM, f"events:{p}") for p in range(3)]
    planned = placement.assign(parts, THREE)
    moved = {"a": "b", "b": "c", "c": "a"}  # say soft affinity ran each one elsewhere
    for part, node in zip(parts, planned, strict=True):
        placement.ran(part, node, moved[node])  # type: ignore[index]
    assert placement.assign(parts, THREE) == [moved[n] for n in planned]  # type: ignore[index]
    assert [(r.key, r.asked, r.ran) for r in placement.records] == [
        (p.key, n, moved[n]) for p, n in zip(parts, planned, strict=True)]  # type: ignore[index]


def test_a_stream_partition_whose_node_left_goes_to_a_live_node_and_stays():
    placement = NodePlacement()
    part = Locality(STREAM, "events:0")
    placement.ran(part, "c", "c")
    assert placement.assign([part], THREE) == ["c"]
    moved = placement.assign([part], {"a": 1.0, "b": 1.0})
    assert moved[0] in {"a", "b"}
    placement.ran(part, moved[0], moved[0])  # type: ignore[arg-type]
    assert placement.assign([part], THREE) == moved  # c came back: it stays put


def test_tasks_without_locality_and_clusters_without_nodes_get_no_preference():
    placement = NodePlacement()
    assert placement.assign([None, *_files("/d/x")], THREE)[0] is None
    assert placement.assign(_files("/d/x"), {}) == [None]


def test_a_partition_task_names_its_file_or_its_kafka_partition():
    import pyarrow as pa

    from unbounded.plan.types import StructType
    from unbounded.runtime.tasks import PartitionTask, run_task
    from unbounded.sources.files import FileInputPartition
    from unbounded.sources.memory import MemoryPartition

    def task(partition: object) -> PartitionTask:
        return PartitionTask("in", None, "r", partition, None, 0, 0, 0)  # type: ignore[arg-type]

    files = FileInputPartition("parquet", ("/d/a.parquet", "/d/b.parquet"), StructType([]), ())
    assert run_task.locality is not None
    assert run_task.locality(task(files)) == Locality(FILE, "/d/a.parquet")
    assert run_task.locality(task(MemoryPartition(pa.table({"x": [1]})))) is None
    kafka = pytest.importorskip("unbounded.sources.kafka")
    part = kafka.KafkaInputPartition("events", 3, 0, 10, {})
    assert run_task.locality(task(part)) == Locality(STREAM, "events:3")
