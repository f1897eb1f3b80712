"""The JSON endpoints the pages poll, the pages and the static files, over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from unbounded.observe.server import UiServer
from unbounded.observe.ui import StreamingUi


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read(), reply.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers["Content-Type"]


POINT = {"batchId": 4, "timestampMs": 10_000, "numInputRows": 20, "inputRowsPerSecond": 10.0,
         "processedRowsPerSecond": 40.0, "batchDuration": 500,
         "durationMs": {"addBatch": 400, "triggerExecution": 500}, "numOutputRows": 3,
         "watermarkMs": 4_000, "watermarkGapMs": 6_000, "stateOperators": []}
RUNNING = {"version": 1, "id": "q1", "runId": "r1", "name": "counts", "status": "RUNNING",
           "startMs": 1_000, "endMs": None, "exception": None, "errorClass": None,
           "pid": 7, "uiUrl": "http://127.0.0.1:4040", "source": "session",
           "batches": [{**POINT, "batchId": 3, "inputRowsPerSecond": 30.0}, POINT]}
FAILED = {**RUNNING, "id": "q2", "runId": "r2", "name": None, "status": "FAILED",
          "startMs": 2_000, "endMs": 5_000, "batches": [],
          "exception": "Traceback (most recent call last):\n  File \"x\"\nValueError: boom\n"}


@pytest.fixture
def url():
    server = UiServer.start("127.0.0.1", 0)
    StreamingUi(lambda: [RUNNING, FAILED]).mount(server)
    yield server.url
    server.close()


def test_the_queries_endpoint_splits_active_and_completed_runs_with_their_figures(url):
    status, body, content_type = _get(url + "/api/v1/streaming/queries")
    assert (status, content_type) == (200, "application/json")
    doc = json.loads(body)
    [active], [completed] = doc["active"], doc["completed"]
    assert active == {
        "id": "q1", "runId": "r1", "name": "counts", "status": "RUNNING", "startMs": 1_000,
        "endMs": None, "durationMs": doc["nowMs"] - 1_000, "latestBatchId": 4,
        "avgInputRowsPerSecond": 20.0, "avgProcessedRowsPerSecond": 40.0, "lastError": None,
        "errorClass": None, "pid": 7, "uiUrl": "http://127.0.0.1:4040", "source": "session"}
    assert completed["durationMs"] == 3_000
    assert completed["lastError"] == "ValueError: boom"
    assert completed["latestBatchId"] is None
    assert completed["avgInputRowsPerSecond"] is None


def test_a_query_endpoint_gives_every_batch_point_and_the_whole_error(url):
    doc = json.loads(_get(url + "/api/v1/streaming/queries/r1")[1])
    assert doc["batches"] == RUNNING["batches"]
    assert doc["query"]["runId"] == "r1"
    failed = json.loads(_get(url + "/api/v1/streaming/queries/r2/")[1])
    assert failed["exception"] == FAILED["exception"]
    assert failed["query"]["status"] == "FAILED"


def test_an_unknown_run_is_a_json_404(url):
    status, body, content_type = _get(url + "/api/v1/streaming/queries/nope")
    assert (status, content_type) == (404, "application/json")
    assert json.loads(body) == {"error": "No query run 'nope' is known here."}


def test_pages_are_html_shells_naming_their_run_and_loading_only_local_scripts(url):
    status, body, content_type = _get(url + "/StreamingQuery/statistics/r1")
    text = body.decode()
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert 'data-page="query" data-run-id="r1"' in text
    assert '<script src="/static/unbounded/charts.js">' in text
    assert "http" not in text.replace('lang="en"', "")  # no CDN, no absolute URL
    for path in ("/", "/StreamingQuery", "/StreamingQuery/"):
        assert 'data-page="list"' in _get(url + path)[1].decode()


def test_a_run_id_is_escaped_in_the_page(url):
    text = _get(url + "/StreamingQuery/statistics/%22%3E%3Cscript%3E")[1].decode()
    assert "<script>" not in text.split("<body", 1)[1].split("<script src", 1)[0]


def test_static_files_are_served_from_the_package_and_nothing_else(url):
    status, body, content_type = _get(url + "/static/unbounded/charts.js")
    assert (status, content_type) == (200, "text/javascript; charset=utf-8")
    assert b"window.UbCharts" in body
    assert _get(url + "/static/unbounded/ui.css")[2] == "text/css; charset=utf-8"
    assert _get(url + "/static/unbounded/../ui.py")[0] == 404
    assert _get(url + "/static/unbounded/missing.js")[0] == 404
    assert _get(url + "/static/unbounded/__init__.py")[0] == 404
