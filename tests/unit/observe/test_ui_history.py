"""A stopped query's history read back from its checkpoint for ``unbounded ui``."""

from __future__ import annotations

import pytest

from unbounded.testing import MemoryStream
from unbounded.tools.history import checkpoint_document, checkpoint_documents
from unbounded.tools.inspect import NotACheckpointError


def test_a_checkpoint_gives_its_batches_offsets_watermarks_and_state(spark, tmp_path):
    from datetime import datetime

    stream = MemoryStream("ts TIMESTAMP, k STRING", spark)
    counts = stream.toDF().withWatermark("ts", "10 seconds").groupBy("k").count()
    cp = tmp_path / "counts_cp"
    q = counts.writeStream.format("noop").outputMode("update") \
        .option("checkpointLocation", str(cp)).start()
    stream.addData([(datetime(2024, 1, 1, 0, 0, 30), "a")])
    q.processAllAvailable(30)
    stream.addData([(datetime(2024, 1, 1, 0, 0, 31), "b")])
    q.processAllAvailable(30)
    q.stop()
    doc = checkpoint_document(str(cp))
    assert (doc["id"], doc["name"], doc["status"], doc["source"]) == \
        (q.id, "counts_cp", "STOPPED", "checkpoint")
    assert doc["runId"].startswith("checkpoint-") and doc["exception"] is None
    batches = doc["batches"]
    assert [b["batchId"] for b in batches[:2]] == [0, 1]
    assert all(b["committed"] for b in batches)
    assert batches[0]["watermarkMs"] is None  # the first batch runs without a watermark
    assert batches[1]["watermarkMs"] == 1704067220000  # 00:00:30 - 10 s
    assert batches[1]["watermarkGapMs"] == batches[1]["timestampMs"] - 1704067220000
    [op] = doc["operators"]
    assert (op["operatorId"], op["numPartitions"], op["stores"]) == (0, 2, 2)
    assert op["latestVersion"] == len(batches) and op["sizeBytes"] > 0


def test_a_folder_without_a_query_is_named_and_left_out_of_the_list(tmp_path):
    with pytest.raises(NotACheckpointError):
        checkpoint_document(str(tmp_path))
    assert checkpoint_documents([str(tmp_path)]) == []


def test_unbounded_ui_names_a_wrong_checkpoint_before_serving(tmp_path, capsys):
    from unbounded.cli import main

    assert main(["ui", "--port", "0", "--checkpoint", str(tmp_path)]) == 2
    assert "is not a checkpoint" in capsys.readouterr().err
