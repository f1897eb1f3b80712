"""``spark.sql.streaming.metricsEnabled=true``: Prometheus text over real HTTP on loopback,
parsed with prometheus_client's parser, for queries whose figures are known; and the
optional JSON log lines."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from unbounded.errors import StreamingQueryException
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metered():
    session = (SparkSession.builder.config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.streaming.metricsEnabled", "true")
               .config("spark.ui.port", "0").create())
    yield session
    session.stop()


def scrape(spark: SparkSession) -> Samples:
    url = spark.sparkContext.uiWebUrl + "/metrics/prometheus"
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(q, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"query_name": q.name or "", "query_id": q.id, **extra}.items()))


def test_a_windowed_query_shows_its_rates_watermark_state_and_dropped_rows(metered):
    spark = metered
    stream = MemoryStream("ts TIMESTAMP, k STRING", spark)
    counts = (stream.toDF().withWatermark("ts", "10 seconds")
              .groupBy(F.window("ts", "10 seconds")).count())
    q = counts.writeStream.format("memory").queryName("windows").outputMode("update").start()
    at = lambda s: datetime(2024, 1, 1, 0, 0, s)  # noqa: E731
    stream.addData([(at(5), "a"), (at(7), "b"), (at(25), "c")])
    q.processAllAvailable(30)
    stream.addData([(at(1), "late"), (at(26), "d")])  # 00:00:01 is below the watermark (15 s)
    q.processAllAvailable(30)
    got = scrape(spark)
    runs = q.recentProgress
    last = q.lastProgress
    me = labels(q)
    assert got[("unbounded_streaming_query_active", me)] == 1.0
    assert got[("unbounded_streaming_batches_total", me)] == len(runs)
    assert got[("unbounded_streaming_input_rows_total", me)] == 5.0
    assert got[("unbounded_streaming_rows_dropped_by_watermark_total", me)] == 1.0
    assert got[("unbounded_streaming_state_rows", me)] == 1.0  # only [00:20, 00:30) is open
    assert got[("unbounded_streaming_state_rows", me)] == last.stateOperators[0].numRowsTotal
    assert got[("unbounded_streaming_state_memory_bytes", me)] == \
        last.stateOperators[0].memoryUsedBytes > 0
    assert last.eventTime["watermark"] == "2024-01-01T00:00:16.000Z"
    assert got[("unbounded_streaming_event_time_watermark_seconds", me)] == \
        datetime.fromisoformat("2024-01-01T00:00:16+00:00").timestamp()
    assert got[("unbounded_streaming_latency_seconds", me)] == last.batchDuration / 1000
    assert got[("unbounded_streaming_processed_rows_per_second", me)] == \
        last.processedRowsPerSecond
    assert got[("unbounded_streaming_input_rows_per_second", me)] == last.inputRowsPerSecond
    assert got[("unbounded_streaming_batch_duration_seconds_count", me)] == len(runs)
    assert got[("unbounded_streaming_batch_duration_seconds_bucket", labels(q, le="+Inf"))] \
        == len(runs)
    assert got[("unbounded_streaming_batch_duration_seconds_sum", me)] == pytest.approx(
        sum(p.batchDuration for p in runs) / 1000)
    q.stop()
    assert scrape(spark)[("unbounded_streaming_query_active", me)] == 0.0


def test_a_failed_batch_is_counted_and_a_query_without_metrics_is_absent(metered, tmp_path):
    spark = metered
    stream = MemoryStream("id LONG", spark)

    def boom(df, batch_id):
        raise ValueError("no")

    failing = (stream.toDF().writeStream.foreachBatch(boom).queryName("failing")
               .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([(1,)])
    with pytest.raises(StreamingQueryException):
        failing.awaitTermination(30)
    spark.conf.set("spark.sql.streaming.metricsEnabled", "false")  # read at start, as Spark
    quiet = stream.toDF().writeStream.format("noop").queryName("quiet").start()
    quiet.processAllAvailable(30)
    got = scrape(spark)
    quiet.stop()
    assert got[("unbounded_streaming_failed_batches_total", labels(failing))] == 1.0
    assert got[("unbounded_streaming_batches_total", labels(failing))] == 0.0
    assert got[("unbounded_streaming_query_active", labels(failing))] == 0.0
    assert not any(dict(key).get("query_name") == "quiet" for _, key in got)
    assert got[("unbounded_listener_events_dropped_total", ())] == 0.0


def test_the_url_is_on_loopback_and_none_with_the_ui_off(metered):
    url = metered.sparkContext.uiWebUrl
    assert url.startswith("http://127.0.0.1:")
    plain = SparkSession.builder.config("spark.ui.enabled", "false").create()
    try:
        assert plain.sparkContext.uiWebUrl is None
    finally:
        plain.stop()


def test_json_logs_print_one_line_per_start_batch_failure_and_restart(spark, tmp_path, capsys):
    spark.conf.set("spark.unbounded.streaming.jsonLogs", "true")
    stream = MemoryStream("id LONG", spark)
    cp = str(tmp_path / "cp")
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", cp).start()
    stream.addData([(1,), (2,)])
    q.processAllAvailable(30)
    q.stop()
    again = stream.toDF().writeStream.format("noop").option("checkpointLocation", cp).start()
    again.stop()

    def boom(df, batch_id):
        raise KeyError("missing")

    bad = (stream.toDF().writeStream.foreachBatch(boom)
           .option("checkpointLocation", str(tmp_path / "bad")).start())
    with pytest.raises(StreamingQueryException):
        bad.awaitTermination(30)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [x["event"] for x in lines] == ["start", "batch", "restart", "start", "failure"]
    batch = lines[1]
    assert (batch["id"], batch["batchId"], batch["numInputRows"], batch["numOutputRows"]) == (
        q.id, 0, 2, 2)
    assert lines[2]["id"] == q.id and lines[2]["runId"] == again.runId
    assert lines[4]["errorClass"] is None and lines[4]["error"] == "KeyError: 'missing'"


def test_the_grafana_dashboard_reads_only_metrics_the_server_exports(metered):
    import os
    import re

    stream = MemoryStream("id LONG", metered)
    q = stream.toDF().writeStream.format("noop").queryName("dash").start()
    stream.addData([(1,)])
    q.processAllAvailable(30)
    url = metered.sparkContext.uiWebUrl + "/metrics/prometheus"
    with urllib.request.urlopen(url, timeout=10) as reply:
        families = list(text_string_to_metric_families(reply.read().decode()))
    q.stop()
    # a family without samples (no watermark, no source lag here) still declares its name
    exported = {f.name for f in families} | {s.name for f in families for s in f.samples}
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "grafana-dashboard.json")
    with open(path) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"unbounded_[a-z_]+", e)}
    assert used - exported == set()
    assert len(used) >= 12
