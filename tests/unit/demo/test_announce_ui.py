"""The demo says where the live UI of its running job is."""

from __future__ import annotations

import re

import pytest

from unbounded.demo.proof import announce_ui
from unbounded.sql import SparkSession
from unbounded.testing import MemoryStream


def test_announce_ui_prints_the_running_sessions_ui_url(
        spark: SparkSession, capsys: pytest.CaptureFixture[str]) -> None:
    stream = MemoryStream("v int", spark)
    query = stream.toDF().writeStream.format("memory").queryName("announced").start()
    try:
        url = announce_ui(spark)
    finally:
        query.stop()
    assert url is not None and re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert capsys.readouterr().out == f"Streaming UI (live while this job runs): {url}\n"
