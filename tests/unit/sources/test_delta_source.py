"""The Delta source: snapshot then versions, limits, starting points, non-append commits."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from unbounded.errors import AnalysisException, UnboundedError
from unbounded.sources.base import SourceContext
from unbounded.sources.delta import DeltaSource


def _append(path, ids, **extra):
    write_deltalake(str(path), pa.table({"id": ids, **extra}), mode="append")


def _source(path, meta=None, **options):
    opts = {"path": str(path), **{k: str(v) for k, v in options.items()}}
    return DeltaSource("delta", SourceContext(opts, None, str(meta) if meta else None))


def _read(src, start, end):
    tables = [p.read() for p in src.partitions(start, end)]
    return sorted(r["id"] for t in tables for r in t.to_pylist())


def _drain(src):
    """Every batch the source hands out, as the ids of each."""
    return _drain_from(src, None)[0]


def _ids(batches):
    return [i for batch in batches for i in batch]


def _drain_from(src, start):
    batches = []
    while (end := src.latest_offset(start)) != start:
        batches.append(_read(src, start, end))
        start = end
    return batches, start


def test_snapshot_first_then_each_new_version(tmp_path):
    _append(tmp_path / "t", [1, 2])
    _append(tmp_path / "t", [3])
    src = _source(tmp_path / "t")
    end = src.latest_offset(None)
    assert end == {"sourceVersion": 1, "reservoirId": src.table_id, "reservoirVersion": 1,
                   "index": 1, "isStartingVersion": True}
    assert _read(src, None, end) == [1, 2, 3]
    _append(tmp_path / "t", [4, 5])
    nxt = src.latest_offset(end)
    assert (nxt["reservoirVersion"], nxt["index"], nxt["isStartingVersion"]) == (2, 0, False)
    assert _read(src, end, nxt) == [4, 5]
    assert src.latest_offset(nxt) == nxt


def test_max_files_per_trigger_cuts_snapshot_and_versions_into_batches(tmp_path):
    for ids in ([1], [2], [3]):
        _append(tmp_path / "t", ids)
    src = _source(tmp_path / "t", maxFilesPerTrigger=2)
    batches, done = _drain_from(src, None)
    assert batches == [[1, 2], [3]]
    _append(tmp_path / "t", [4])
    _append(tmp_path / "t", [5, 6])
    _append(tmp_path / "t", [7])
    assert _drain_from(src, done)[0] == [[4, 5, 6], [7]]


def test_a_version_of_many_files_is_split_by_index(tmp_path):
    _append(tmp_path / "t", [0])
    write_deltalake(str(tmp_path / "t"), pa.table({"id": [1, 2, 3], "k": ["a", "b", "c"]}),
                    mode="overwrite", partition_by=["k"], schema_mode="overwrite")
    src = _source(tmp_path / "t", startingVersion=1, maxFilesPerTrigger=1,
                  skipChangeCommits="true")
    assert _drain(src) == []  # version 1 removes the old file: skipped whole
    src = _source(tmp_path / "t", maxFilesPerTrigger=1)
    assert sorted(_drain(src)) == [[1], [2], [3]]  # one file per batch


def test_max_bytes_per_trigger_takes_at_least_one_file(tmp_path):
    for ids in ([1], [2], [3]):
        _append(tmp_path / "t", ids)
    assert _drain(_source(tmp_path / "t", maxBytesPerTrigger=1)) == [[1], [2], [3]]


def test_starting_version_reads_changes_from_that_version(tmp_path):
    for ids in ([1], [2], [3]):
        _append(tmp_path / "t", ids)
    assert _ids(_drain(_source(tmp_path / "t", startingVersion=1))) == [2, 3]


def test_starting_version_latest_reads_only_later_commits_and_is_kept(tmp_path):
    _append(tmp_path / "t", [1])
    src = _source(tmp_path / "t", tmp_path / "meta", startingVersion="latest")
    assert src.latest_offset(None) is None
    _append(tmp_path / "t", [2])
    again = _source(tmp_path / "t", tmp_path / "meta", startingVersion="latest")
    assert _drain(again) == [[2]]  # the start fixed by the first run, not 'latest' now


def test_starting_timestamp_starts_at_the_first_commit_at_or_after_it(tmp_path):
    for ids in ([1], [2], [3]):
        _append(tmp_path / "t", ids)
    stamps = {h["version"]: h["timestamp"] for h in DeltaTable(str(tmp_path / "t")).history()}
    moment = dt.datetime.fromtimestamp(stamps[1] / 1000, dt.UTC).replace(tzinfo=None)
    src = _source(tmp_path / "t", startingTimestamp=moment.isoformat())
    assert _ids(_drain(src)) == [2, 3]


def test_partition_columns_come_from_the_log(tmp_path):
    write_deltalake(str(tmp_path / "t"), pa.table({"id": [1, 2], "day": [dt.date(2024, 1, 1),
                                                                       dt.date(2024, 1, 2)]}),
                    partition_by=["day"])
    write_deltalake(str(tmp_path / "t"), pa.table({"id": [3], "day": [dt.date(2024, 1, 3)]}),
                    mode="append")
    src = _source(tmp_path / "t", startingVersion=0)
    end = src.latest_offset(None)
    rows = [r for p in src.partitions(None, end) for r in p.read().to_pylist()]
    assert sorted(rows, key=lambda r: r["id"]) == [
        {"id": 1, "day": dt.date(2024, 1, 1)}, {"id": 2, "day": dt.date(2024, 1, 2)},
        {"id": 3, "day": dt.date(2024, 1, 3)}]


def _delete_and_update(path):
    _append(path, [1, 2], k=["a", "b"])                      # version 0
    DeltaTable(str(path)).delete("id = 1")                    # version 1: rewrite (update)
    _append(path, [3], k=["c"])                               # version 2
    DeltaTable(str(path)).delete("k = 'c'")                   # version 3: delete only
    _append(path, [4], k=["d"])                               # version 4


def test_update_version_fails_naming_skip_change_commits(tmp_path):
    _delete_and_update(tmp_path / "t")
    with pytest.raises(UnboundedError, match="skipChangeCommits") as info:
        _drain(_source(tmp_path / "t", startingVersion=0))
    assert info.value.error_class == "DELTA_SOURCE_TABLE_IGNORE_CHANGES"
    assert "version 1" in str(info.value)


def test_delete_only_version_fails_naming_ignore_deletes(tmp_path):
    _delete_and_update(tmp_path / "t")
    with pytest.raises(UnboundedError, match="'ignoreDeletes' to 'true'") as info:
        _drain(_source(tmp_path / "t", startingVersion=2))
    assert info.value.error_class == "DELTA_SOURCE_IGNORE_DELETE"
    assert _ids(_drain(_source(tmp_path / "t", startingVersion=2, ignoreDeletes="true"))) == [
        3, 4]


def test_skip_change_commits_skips_updates_and_deletes(tmp_path):
    _delete_and_update(tmp_path / "t")
    src = _source(tmp_path / "t", startingVersion=0, skipChangeCommits="true")
    assert _ids(_drain(src)) == [1, 2, 3, 4]


def test_ignore_changes_reemits_rewritten_files(tmp_path):
    _delete_and_update(tmp_path / "t")
    src = _source(tmp_path / "t", startingVersion=0, ignoreChanges="true")
    assert sorted(_ids(_drain(src))) == [1, 2, 2, 3, 4]  # 2 again from the rewrite


def test_schema_change_after_start_fails_asking_for_restart(tmp_path):
    _append(tmp_path / "t", [1])
    src = _source(tmp_path / "t")
    first = src.latest_offset(None)
    write_deltalake(str(tmp_path / "t"), pa.table({"id": [2], "x": ["n"]}), mode="append",
                    schema_mode="merge")
    with pytest.raises(UnboundedError, match="restarting the query"):
        src.latest_offset(first)
    restarted = _source(tmp_path / "t")
    rows = [r for p in restarted.partitions(first, restarted.latest_offset(first))
            for r in p.read().to_pylist()]
    assert rows == [{"id": 2, "x": "n"}]


def test_available_now_stops_at_the_version_present_when_prepared(tmp_path):
    _append(tmp_path / "t", [1])
    src = _source(tmp_path / "t", startingVersion=0)
    src.prepare_for_available_now()
    _append(tmp_path / "t", [2])
    assert _drain(src) == [[1]]


@pytest.mark.parametrize(("options", "needle"), [
    ({"startingVersion": "0", "startingTimestamp": "2024-01-01"}, "not both"),
    ({"startingVersion": "x"}, "version number or 'latest'"),
    ({"startingVersion": "9"}, "Available versions: \\[0, 0\\]"),
    ({"startingTimestamp": "yesterday"}, "startingTimestamp must be"),
])
def test_bad_starting_options_fail_clearly(tmp_path, options, needle):
    _append(tmp_path / "t", [1])
    with pytest.raises(AnalysisException, match=needle):
        src = _source(tmp_path / "t", **options)
        src.latest_offset(None)


def test_not_a_table_and_a_reader_schema_are_refused(spark, tmp_path):
    with pytest.raises(AnalysisException, match="is not a Delta table"):
        spark.readStream.format("delta").load(str(tmp_path))
    _append(tmp_path / "t", [1])
    with pytest.raises(AnalysisException, match="specifying the schema"):
        spark.readStream.format("delta").schema("id LONG").load(str(tmp_path / "t"))


def test_replaced_table_fails_against_the_checkpoint_offset(tmp_path):
    _append(tmp_path / "t", [1])
    end = _source(tmp_path / "t").latest_offset(None)
    with pytest.raises(AnalysisException, match="table was replaced"):
        _source(tmp_path / "t").latest_offset({**end, "reservoirId": "other"})
