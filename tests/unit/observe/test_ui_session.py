"""The session's UI: on from the session's start as in Spark, off with spark.ui.enabled."""

from __future__ import annotations

import json
import os
import urllib.request

from unbounded.sql import SparkSession
from unbounded.testing import MemoryStream


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def test_the_ui_serves_a_session_s_runs_from_its_start_and_publishes_them(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("UNBOUNDED_UI_DIR", str(tmp_path))
    spark = SparkSession.builder.config("spark.ui.port", "0").create()
    try:
        url = spark.sparkContext.uiWebUrl
        assert _json(url + "/api/v1/streaming/queries")["active"] == []
        stream = MemoryStream("v LONG", spark)
        q = stream.toDF().writeStream.format("noop").queryName("seen").start()
        stream.addData([(1,), (2,)])
        q.processAllAvailable(30)
        [row] = _json(url + "/api/v1/streaming/queries")["active"]
        assert (row["name"], row["runId"], row["latestBatchId"]) == ("seen", q.runId, 0)
        assert row["uiUrl"] == url and row["pid"] == os.getpid()
        [point] = _json(f"{url}/api/v1/streaming/queries/{q.runId}")["batches"]
        assert (point["batchId"], point["numInputRows"]) == (0, 2)
        q.stop()
        [done] = _json(url + "/api/v1/streaming/queries")["completed"]
        assert (done["status"], done["lastError"]) == ("FINISHED", None)
        spark.streams._hub._publisher.flush()
        published = json.loads((tmp_path / f"{os.getpid()}-{q.runId}.json").read_text())
        assert published["status"] == "FINISHED"
    finally:
        spark.stop()
    assert list(tmp_path.iterdir()) == []


def test_spark_ui_enabled_false_starts_no_server_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("UNBOUNDED_UI_DIR", str(tmp_path))
    spark = SparkSession.builder.config("spark.ui.enabled", "false").create()
    try:
        assert spark.sparkContext.uiWebUrl is None
        stream = MemoryStream("v LONG", spark)
        q = stream.toDF().writeStream.format("noop").start()
        stream.addData([(1,)])
        q.processAllAvailable(30)
        q.stop()
        assert list(tmp_path.iterdir()) == []
    finally:
        spark.stop()
