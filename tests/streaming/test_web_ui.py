"""The Structured Streaming UI in a real browser: Debian's Chromium, driven by Playwright.

A real query runs while the page is open: its charts and its latest batch must move
without a reload; a failing query's page must show the error; ``unbounded ui`` must show
a query of another process and a stopped query's checkpoint. Screenshots go to pytest's
temporary folder, and to docs/ui/ when UNBOUNDED_UI_SCREENSHOTS=1 (``make ui-screenshots``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ROOT
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="Debian's chromium is not installed (make test installs it when run as root: "
           "apt-get install chromium chromium-driver)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One Chromium for the module, with a fresh profile (never a downloaded browser)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1000})
        yield context
        context.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page()
    yield tab
    tab.close()


@pytest.fixture
def ui_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "run"
    monkeypatch.setenv("UNBOUNDED_UI_DIR", str(folder))
    return folder


@pytest.fixture
def session(ui_dir: Path) -> Iterator[SparkSession]:
    spark = (SparkSession.builder.appName("ui-test").config("spark.ui.port", "0")
             .config("spark.sql.shuffle.partitions", "2").create())
    yield spark
    spark.stop()


def shoot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UNBOUNDED_UI_SCREENSHOTS") == "1":
        shutil.copy(path, Path(ROOT) / "docs" / "ui" / f"{name}.png")


def int_attr(page, selector: str, name: str) -> int:
    return int(page.get_attribute(selector, name) or "0")


def feed(stream: MemoryStream, stop: threading.Event) -> None:
    """Rows a few seconds old, every 150 ms: the watermark trails by 5 s."""
    n = 0
    while not stop.is_set():
        now = datetime.now(UTC).replace(tzinfo=None)
        stream.addData([(now - timedelta(seconds=2), f"k{i % 3}", n + i) for i in range(20)])
        n += 20
        stop.wait(0.15)


def test_a_running_query_s_charts_and_latest_batch_move_without_reload(session, page,
                                                                         tmp_path):
    stream = MemoryStream("ts TIMESTAMP, k STRING, v LONG", session)
    counts = (stream.toDF().withWatermark("ts", "5 seconds")
              .groupBy(F.window("ts", "10 seconds"), "k").count())
    q = counts.writeStream.format("memory").queryName("window_counts") \
        .outputMode("update").start()
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(stream, stop), daemon=True)
    feeder.start()
    try:
        page.goto(session.sparkContext.uiWebUrl + "/StreamingQuery/")
        page.wait_for_selector("#active-queries a:text('window_counts')", timeout=WAIT_MS)
        assert page.text_content("#completed-queries tbody") == ""
        page.wait_for_function(  # the list refreshes too: its latest batch column moves
            "() => Number(document.querySelector('#active-queries tbody td:nth-child(7)')"
            "?.textContent || -1) >= 2", timeout=WAIT_MS)
        shoot(page, tmp_path, "queries")
        page.click("#active-queries a:text('window_counts')")
        page.wait_for_function(  # the first batch is on the page
            "() => /^[0-9]+$/.test(document.getElementById('latest-batch')?.textContent)",
            timeout=WAIT_MS)
        assert page.text_content("#summary .status") == "RUNNING"
        assert q.runId in page.text_content("#summary")
        first_batch = int(page.text_content("#latest-batch"))
        first_points = int_attr(page, "#chart-input-rows svg", "data-points")
        # the same page, no reload: the poller redraws with newer batches
        page.wait_for_function(
            "b => Number(document.getElementById('latest-batch').textContent) >= b + 3",
            arg=first_batch, timeout=WAIT_MS)
        page.wait_for_function(
            "n => Number(document.querySelector('#chart-input-rows svg')"
            ".getAttribute('data-points')) > n", arg=first_points, timeout=WAIT_MS)
        for chart in ("rates", "batch-duration", "operation-duration", "watermark-gap",
                      "state-rows", "state-memory"):
            assert int_attr(page, f"#chart-{chart} svg", "data-points") > 0, chart
        legend = page.text_content("#chart-rates .legend")
        assert "input rate" in legend and "process rate" in legend
        assert "addBatch" in page.text_content("#chart-operation-duration .legend")
        shown = int(page.text_content("#latest-batch"))
        assert shown > first_batch
        rows = page.locator("#batch-table tbody tr")
        assert rows.count() >= 4
        assert rows.first.locator("td").first.text_content() == str(shown)
        shoot(page, tmp_path, "query")
    finally:
        stop.set()
        feeder.join()
        q.stop()
    assert q.lastProgress["batchId"] >= shown


def test_a_failed_query_shows_its_error_in_the_list_and_on_its_page(session, page, tmp_path):
    stream = MemoryStream("v LONG", session)

    def explode(df, batch_id):
        if batch_id == 1:
            raise ValueError("bad row in batch 1: v=42")

    q = stream.toDF().writeStream.foreachBatch(explode).queryName("doomed").start()
    stream.addData([(1,)])
    q.processAllAvailable(30)
    stream.addData([(42,)])
    with pytest.raises(Exception, match="bad row in batch 1"):
        q.awaitTermination(30)
    page.goto(session.sparkContext.uiWebUrl + "/StreamingQuery/")
    page.wait_for_selector("#completed-queries a:text('doomed')", timeout=WAIT_MS)
    row = page.locator("#completed-queries tbody tr", has_text="doomed")
    assert row.locator(".status").text_content() == "FAILED"
    assert row.locator(".error-text").text_content() == "ValueError: bad row in batch 1: v=42"
    shoot(page, tmp_path, "queries-failed")
    row.locator("a").click()
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    error = page.text_content("#error")
    assert error.startswith("Traceback") and "ValueError: bad row in batch 1: v=42" in error
    assert page.text_content("#summary .status") == "FAILED"
    assert page.text_content("#latest-batch") == "0"
    shoot(page, tmp_path, "query-failed")


LIVE_JOB = """
import sys, time
from unbounded.sql import SparkSession
from unbounded.testing import MemoryStream
spark = SparkSession.builder.config("spark.ui.port", "0").create()
stream = MemoryStream("v LONG", spark)
q = stream.toDF().writeStream.format("noop").queryName("elsewhere").start()
print(q.runId, flush=True)
for n in range(600):  # SIGTERM stops the query (the session's handler), then this ends
    if not q.isActive:
        break
    stream.addData([(n,)])
    time.sleep(0.1)
"""


def stopped_checkpoint(spark: SparkSession, path: Path) -> str:
    stream = MemoryStream("v LONG", spark)
    q = stream.toDF().writeStream.format("noop").option("checkpointLocation", str(path)) \
        .start()
    for n in range(3):
        stream.addData([(n,)])
        q.processAllAvailable(30)
    q.stop()
    return str(path)


def test_unbounded_ui_shows_another_process_s_query_and_a_checkpoint(session, page, ui_dir,
                                                                      tmp_path, python_env):
    checkpoint = stopped_checkpoint(session, tmp_path / "stopped_query")
    python_env["UNBOUNDED_UI_DIR"] = str(ui_dir)
    job = subprocess.Popen([sys.executable, "-c", LIVE_JOB], env=python_env,
                           stdout=subprocess.PIPE, text=True)
    viewer = subprocess.Popen(
        [sys.executable, "-m", "unbounded.cli", "ui", "--port", "0", "--run-dir", str(ui_dir),
         "--checkpoint", checkpoint], env=python_env, stdout=subprocess.PIPE, text=True)
    try:
        live_run = job.stdout.readline().strip()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", viewer.stdout.readline()).group(1)
        page.goto(url + "/StreamingQuery/")
        page.wait_for_selector("#active-queries a:text('elsewhere')", timeout=WAIT_MS)
        assert live_run in page.text_content("#active-queries")
        stopped = page.locator("#completed-queries tbody tr", has_text="stopped_query")
        assert stopped.locator(".status").text_content() == "STOPPED"
        shoot(page, tmp_path, "viewer")
        page.click("#active-queries a:text('elsewhere')")
        page.wait_for_function(
            "() => Number(document.getElementById('latest-batch')?.textContent) >= 3",
            timeout=WAIT_MS)
        page.goto(url + "/StreamingQuery/")
        page.click("#completed-queries a:text('stopped_query')")
        page.wait_for_selector("#batch-table tbody tr", timeout=WAIT_MS)
        assert [c.text_content() for c in page.locator("#batch-table tbody tr td:first-child")
                .all()] == ["2", "1", "0"]
        assert checkpoint in page.text_content("#summary")
        shoot(page, tmp_path, "viewer-checkpoint")
    finally:
        for proc in (viewer, job):
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
