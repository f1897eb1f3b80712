"""The ``unbounded`` command."""

from __future__ import annotations

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
