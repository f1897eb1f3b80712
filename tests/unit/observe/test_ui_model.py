"""The figures the pages show, cut from Spark-shaped progress records."""

from __future__ import annotations

from unbounded.observe.ui_model import batch_point, query_summary

PROGRESS = {
    "id": "q", "runId": "r", "name": "n", "timestamp": "2024-01-01T00:00:30.000Z",
    "batchId": 7, "batchDuration": 120, "numInputRows": 50, "inputRowsPerSecond": 25.0,
    "processedRowsPerSecond": 400.0,
    "durationMs": {"latestOffset": 1, "addBatch": 100, "triggerExecution": 120},
    "eventTime": {"watermark": "2024-01-01T00:00:20.000Z"},
    "stateOperators": [{"operatorName": "stateStoreSave", "numRowsTotal": 9,
                        "numRowsUpdated": 2, "memoryUsedBytes": 640,
                        "numRowsDroppedByWatermark": 1, "customMetrics": {}}],
    "sources": [], "sink": {"description": "memory", "numOutputRows": 4},
}


def test_a_batch_point_carries_rates_durations_state_and_the_watermark_gap():
    assert batch_point(PROGRESS) == {
        "batchId": 7, "timestampMs": 1704067230000, "numInputRows": 50,
        "inputRowsPerSecond": 25.0, "processedRowsPerSecond": 400.0, "batchDuration": 120,
        "durationMs": {"latestOffset": 1, "addBatch": 100, "triggerExecution": 120},
        "numOutputRows": 4, "watermarkMs": 1704067220000, "watermarkGapMs": 10_000,
        "stateOperators": [{"operatorName": "stateStoreSave", "numRowsTotal": 9,
                            "numRowsUpdated": 2, "memoryUsedBytes": 640,
                            "numRowsDroppedByWatermark": 1}]}


def test_no_watermark_yet_means_no_gap_as_in_spark_s_ui():
    point = batch_point({**PROGRESS, "eventTime": {"watermark": "1970-01-01T00:00:00.000Z"}})
    assert (point["watermarkMs"], point["watermarkGapMs"]) == (None, None)
    assert batch_point({"batchId": 0})["watermarkGapMs"] is None


def test_a_summary_s_duration_runs_until_now_or_the_end_and_the_error_is_one_line():
    doc = {"startMs": 1_000, "endMs": None, "batches": [],
           "exception": "[STREAM_FAILED] Query failed\nmore detail"}
    assert query_summary(doc, now_ms=4_000)["durationMs"] == 3_000
    assert query_summary({**doc, "endMs": 2_500}, now_ms=4_000)["durationMs"] == 1_500
    assert query_summary(doc)["lastError"] == "[STREAM_FAILED] Query failed"
