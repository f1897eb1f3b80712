from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from unbounded.observe.metrics import StreamingMetrics, watermark_seconds


def _samples(metrics: StreamingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.route().body.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _progress(batch: int, ms: int, rows: int, dropped: int = 0) -> dict[str, object]:
    return {"id": "q1", "batchId": batch, "batchDuration": ms, "numInputRows": rows,
            "inputRowsPerSecond": 2.5, "processedRowsPerSecond": 40.0,
            "eventTime": {"watermark": "2024-01-01T00:00:10.000Z"},
            "stateOperators": [{"numRowsTotal": 4, "memoryUsedBytes": 100,
                                "numRowsDroppedByWatermark": dropped},
                               {"numRowsTotal": 1, "memoryUsedBytes": 20,
                                "numRowsDroppedByWatermark": 0}],
            "sources": [{"description": "KafkaV2[Subscribe[t]]",
                         "metrics": {"avgOffsetsBehindLatest": "12.5", "note": "text"}}]}


def test_a_scrape_shows_the_latest_gauges_counters_and_the_histogram():
    metrics = StreamingMetrics(lambda: 3)
    metrics.started("q1", "orders")
    metrics.batch_done("q1", _progress(0, 20, 5, dropped=2))
    metrics.batch_done("q1", _progress(1, 700, 3, dropped=1))
    metrics.terminated("q1", failed=True)
    got = _samples(metrics)
    q = (("query_id", "q1"), ("query_name", "orders"))
    assert got[("unbounded_streaming_query_active", q)] == 0.0
    assert got[("unbounded_streaming_latency_seconds", q)] == 0.7
    assert got[("unbounded_streaming_input_rows_per_second", q)] == 2.5
    assert got[("unbounded_streaming_processed_rows_per_second", q)] == 40.0
    assert got[("unbounded_streaming_event_time_watermark_seconds", q)] == 1704067210.0
    assert got[("unbounded_streaming_state_rows", q)] == 5.0
    assert got[("unbounded_streaming_state_memory_bytes", q)] == 120.0
    assert got[("unbounded_streaming_batches_total", q)] == 2.0
    assert got[("unbounded_streaming_input_rows_total", q)] == 8.0
    assert got[("unbounded_streaming_failed_batches_total", q)] == 1.0
    assert got[("unbounded_streaming_rows_dropped_by_watermark_total", q)] == 3.0
    assert got[("unbounded_streaming_batch_duration_seconds_bucket", (("le", "0.025"), *q))] == 1
    assert got[("unbounded_streaming_batch_duration_seconds_bucket", (("le", "0.5"), *q))] == 1
    assert got[("unbounded_streaming_batch_duration_seconds_bucket", (("le", "1.0"), *q))] == 2
    assert got[("unbounded_streaming_batch_duration_seconds_count", q)] == 2
    assert got[("unbounded_streaming_batch_duration_seconds_sum", q)] == 0.72
    lag = (("metric", "avgOffsetsBehindLatest"), *q[:1], ("query_name", "orders"),
           ("source", "KafkaV2[Subscribe[t]]"))
    assert got[("unbounded_streaming_source_lag", tuple(sorted(lag)))] == 12.5
    assert not any(k[0] == "unbounded_streaming_source_lag" and ("metric", "note") in k[1]
                   for k in got)
    assert got[("unbounded_listener_events_dropped_total", ())] == 3.0


def test_a_query_without_a_batch_has_no_gauges_and_no_watermark_means_none():
    metrics = StreamingMetrics()
    metrics.started("q2", None)
    got = _samples(metrics)
    q = (("query_id", "q2"), ("query_name", ""))
    assert got[("unbounded_streaming_query_active", q)] == 1.0
    assert ("unbounded_streaming_latency_seconds", q) not in got
    assert watermark_seconds({"eventTime": {}}) is None


def test_source_lag_shows_a_file_source_s_outstanding_files_but_not_its_files_done():
    metrics = StreamingMetrics()
    metrics.started("q3", "files")
    progress = {"id": "q3", "batchId": 0, "sources": [{
        "description": "FileStreamSource[file:/in]",
        "metrics": {"numFilesOutstanding": "7", "numFilesProcessed": "40"}}]}
    metrics.batch_done("q3", progress)
    lags = {dict(k[1])["metric"]: v for k, v in _samples(metrics).items()
            if k[0] == "unbounded_streaming_source_lag"}
    assert lags == {"numFilesOutstanding": 7.0}
