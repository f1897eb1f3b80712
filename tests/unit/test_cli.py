"""The ``unbounded`` command."""

from __future__ import annotations

import json

import pytest

from unbounded.cli import main
from unbounded.testing import MemoryStream


def test_inspect_lists_each_batch_with_its_offsets_and_commit_state(spark, tmp_path, capsys):
    stream = MemoryStream("id LONG", spark)
    cp = tmp_path / "cp"
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", str(cp)).start()
    for i in range(2):
        stream.addData([(i,)])
        q.processAllAvailable(30)
    q.stop()
    (cp / "commits" / "1").unlink()  # batch 1 now looks interrupted
    assert main(["inspect", str(cp)]) == 0
    out = capsys.readouterr().out
    assert f"query id {q.id}" in out and "['memory']" in out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(("│ 0", "│ 1"))]
    assert len(lines) == 2
    assert "yes" in lines[0] and "NO" in lines[1]


def test_inspect_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "is not a checkpoint" in capsys.readouterr().err


def _two_batches(spark, cp):
    stream = MemoryStream("id LONG", spark)
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", str(cp)).start()
    for i in range(2):
        stream.addData([(i,)])
        q.processAllAvailable(30)
    q.stop()
    return q


def test_version_prints_the_package_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"unbounded {version('unbounded')}"


def test_inspect_json_marks_an_uncommitted_batch(spark, tmp_path, capsys):
    cp = tmp_path / "cp"
    q = _two_batches(spark, cp)
    (cp / "commits" / "1").unlink()
    assert main(["checkpoint", "inspect", str(cp), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["query_id"] == q.id and doc["sources"] == ["memory"] and doc["sink"] == "noop"
    assert [(b["batch_id"], b["committed"]) for b in doc["batches"]] == [(0, True), (1, False)]
    assert doc["lastCommittedBatch"] == 0 and doc["operators"] == []
    assert doc["sink_manifest"] is None


def test_inspect_shows_a_damaged_entry_instead_of_failing(spark, tmp_path, capsys):
    cp = tmp_path / "cp"
    _two_batches(spark, cp)
    entry = cp / "offsets" / "1"
    entry.write_text(entry.read_text().replace("v1", "v2", 1))
    assert main(["checkpoint", "inspect", str(cp), "--json"]) == 0
    batches = json.loads(capsys.readouterr().out)["batches"]
    assert batches[0]["error"] is None
    assert str(entry) in batches[1]["error"] and batches[1]["offsets"] == []


def test_validate_reports_a_batch_that_ran_after_an_uncommitted_one(spark, tmp_path, capsys):
    cp = tmp_path / "cp"
    _two_batches(spark, cp)
    for name in ("0", ".0.crc32c"):
        (cp / "commits" / name).unlink()
    assert main(["checkpoint", "validate", str(cp)]) == 1
    out = capsys.readouterr().out
    assert f"{cp / 'offsets' / '0'}: batch 0 has offsets but no commit, and batch 1 ran " \
           "after it" in out
