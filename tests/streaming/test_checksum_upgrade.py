"""A stream-stream join checkpoint from a release before checksums and before
``join-keys``: the restart adds ``join-keys`` to ``state/0/_metadata`` beside the old
unchecked ``schema-left``, ``schema-right`` and ``partitioning``; later restarts resume
with exact output, and a sidecar deleted from ``join-keys`` is still refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unbounded.checkpoint.checksum import MARKER_NAME, sidecar_path
from unbounded.errors import CheckpointCorruptError


def _add(folder: Path, name: str, rows: list[dict[str, object]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(spark, root: Path):
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    left = spark.readStream.schema("k INT, a STRING").json(str(root / "left"))
    right = spark.readStream.schema("k INT, b STRING").json(str(root / "right"))
    query = (left.join(right, "k").writeStream.format("parquet")
             .option("path", str(root / "out"))
             .option("checkpointLocation", str(root / "cp"))
             .trigger(availableNow=True).start())
    query.awaitTermination(60)
    return query


def _as_an_older_release_left_it(meta: Path) -> None:
    """No ``join-keys`` (it came later), no sidecars, no marker."""
    (meta / "join-keys").unlink()
    for path in meta.glob(".*"):
        path.unlink()
    assert sorted(p.name for p in meta.iterdir()) == [
        "partitioning", "schema-left", "schema-right"]


def _output(spark, root: Path) -> list[tuple[object, ...]]:
    return sorted(tuple(r) for r in spark.read.parquet(str(root / "out")).collect())


def test_a_join_checkpoint_from_before_checksums_resumes_after_join_keys_is_added(
        spark, tmp_path):
    _add(tmp_path / "left", "l0.json", [{"k": 1, "a": "a1"}, {"k": 2, "a": "a2"}])
    _add(tmp_path / "right", "r0.json", [{"k": 1, "b": "b1"}])
    assert _run(spark, tmp_path).exception() is None
    meta = tmp_path / "cp" / "state" / "0" / "_metadata"
    _as_an_older_release_left_it(meta)
    _add(tmp_path / "right", "r1.json", [{"k": 2, "b": "b2"}])
    assert _run(spark, tmp_path).exception() is None  # writes join-keys, marks the folder
    assert (meta / MARKER_NAME).read_text().startswith(
        'v2 first=0 unchecked=["partitioning","schema-left","schema-right"] ')
    _add(tmp_path / "left", "l1.json", [{"k": 1, "a": "a1x"}, {"k": 2, "a": "a2x"}])
    assert _run(spark, tmp_path).exception() is None  # reads the old files unverified
    assert _output(spark, tmp_path) == [
        (1, "a1", "b1"), (1, "a1x", "b1"), (2, "a2", "b2"), (2, "a2x", "b2")]
    left = spark.read.format("statestore").option("joinSide", "left")
    assert sorted((tuple(r.key), tuple(r.value)) for r in left.load(str(tmp_path / "cp"))
                  .collect()) == [((1,), (1, "a1")), ((1,), (1, "a1x")), ((2,), (2, "a2")),
                                  ((2,), (2, "a2x"))]
    Path(sidecar_path(str(meta / "join-keys"))).unlink()
    with pytest.raises(CheckpointCorruptError, match="join-keys has no checksum file"):
        left.load(str(tmp_path / "cp"))


def test_deleting_a_sidecar_of_a_join_written_checked_is_refused(spark, tmp_path):
    """The same folder written by this release: no name is left unchecked."""
    _add(tmp_path / "left", "l0.json", [{"k": 1, "a": "a1"}])
    _add(tmp_path / "right", "r0.json", [{"k": 1, "b": "b1"}])
    assert _run(spark, tmp_path).exception() is None
    meta = tmp_path / "cp" / "state" / "0" / "_metadata"
    assert (meta / MARKER_NAME).read_text().startswith("v1 first=0 ")
    Path(sidecar_path(str(meta / "schema-left"))).unlink()
    _add(tmp_path / "right", "r1.json", [{"k": 1, "b": "b2"}])
    with pytest.raises(CheckpointCorruptError, match="schema-left has no checksum file"):
        raise _run(spark, tmp_path).exception().cause
