"""A running query is not silent: one INFO line per batch, a warning on an overrun."""

from __future__ import annotations

import logging
import re
import time

import pytest

from unbounded.sql import SparkSession
from unbounded.testing import MemoryStream

BATCH_LINE = re.compile(r"Query logged batch (\d+): (\d+) rows in \d+ ms, "
                        r"watermark none")


def test_each_batch_logs_one_info_line_with_id_rows_duration_and_watermark(
        spark: SparkSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unbounded.runtime.execution")
    stream = MemoryStream("v int", spark)
    query = stream.toDF().writeStream.format("memory").queryName("logged").start()
    try:
        for rows in ([(1,), (2,), (3,)], [(4,)]):
            stream.addData(rows)
            query.processAllAvailable()
    finally:
        query.stop()
    lines = [r.getMessage() for r in caplog.records
             if r.name == "unbounded.runtime.execution" and r.levelno == logging.INFO]
    matches = [BATCH_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [(int(m.group(1)), int(m.group(2))) for m in matches if m] == [(0, 3), (1, 1)]


def test_a_batch_longer_than_its_trigger_interval_logs_sparks_falling_behind_warning(
        spark: SparkSession, caplog: pytest.LogCaptureFixture) -> None:
    stream = MemoryStream("v int", spark)
    query = stream.toDF().writeStream.trigger(processingTime="10 milliseconds") \
        .foreachBatch(lambda _df, _id: time.sleep(0.05)).start()
    try:
        stream.addData([(1,)])
        query.processAllAvailable()
    finally:
        query.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(re.fullmatch(r"Current batch is falling behind\. The trigger interval is 10 "
                            r"milliseconds, but spent \d+ milliseconds", w) for w in warnings)
