"""The Structured Streaming pages and the JSON they poll, mounted on a ``UiServer``.

Pages (Spark's paths): ``/StreamingQuery/`` lists the active and completed queries;
``/StreamingQuery/statistics/<runId>`` charts one run. Both are small HTML shells whose
script (shipped in ``observe/static``, no network fetches) polls the JSON endpoints
every second and redraws SVG charts in place:

- ``/api/v1/streaming/queries``: ``{"active": [summary], "completed": [summary]}``
- ``/api/v1/streaming/queries/<runId>``: ``{"query": summary, "batches": [point],
  "exception": text, "operators": [...], "checkpoint": path}`` (404 when unknown)

Summaries and points are ``ui_model.query_summary`` / ``batch_point``. Where the query
documents come from is the caller's: the session's board, or the standalone viewer's
status files and checkpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from unbounded.observe.server import Response, UiServer
from unbounded.observe.ui_model import query_detail, query_summary

__all__ = ["API_PATH", "LIST_PATH", "QUERY_PATH", "STATIC_PATH", "StreamingUi"]

LIST_PATH = "/StreamingQuery"
QUERY_PATH = "/StreamingQuery/statistics"
API_PATH = "/api/v1/streaming/queries"
STATIC_PATH = "/static/unbounded"
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_FINISHED_FIRST = ("FAILED", "EXITED", "FINISHED", "STOPPED")

Documents = Callable[[], list[dict[str, Any]]]


class StreamingUi:
    """The Structured Streaming tab over whatever ``documents()`` returns each time."""

    def __init__(self, documents: Documents, title: str = "unbounded") -> None:
        self._documents = documents
        self._title = title

    def mount(self, server: UiServer) -> None:
        server.add_route("/", self.list_page)
        server.add_route(LIST_PATH, self.list_page)
        server.add_prefix_route(QUERY_PATH, self.query_page)
        server.add_route(API_PATH, self.queries_json)
        server.add_prefix_route(API_PATH, self.query_json)
        server.add_prefix_route(STATIC_PATH, static_file)

    # ---- JSON ------------------------------------------------------------------------
    def queries_json(self) -> Response:
        now = _now_ms()
        rows = [query_summary(doc, now) for doc in self._documents()]
        active = sorted((r for r in rows if r["status"] == "RUNNING"),
                        key=lambda r: r["startMs"] or 0, reverse=True)
        completed = sorted((r for r in rows if r["status"] in _FINISHED_FIRST),
                           key=lambda r: r["endMs"] or r["startMs"] or 0, reverse=True)
        return _json({"active": active, "completed": completed, "nowMs": now})

    def query_json(self, run_id: str) -> Response:
        doc = next((d for d in self._documents() if d.get("runId") == run_id), None)
        if doc is None:
            return _json({"error": f"No query run {run_id!r} is known here."}, 404)
        return _json(query_detail(doc))

    # ---- pages -----------------------------------------------------------------------
    def list_page(self) -> Response:
        return _page(f"{self._title} - Structured Streaming", "list", "")

    def query_page(self, run_id: str) -> Response:
        return _page(f"{self._title} - Streaming Query Statistics", "query", run_id)


def static_file(name: str) -> Response:
    """A file of ``observe/static`` (only plain names: no folders, no dot files)."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in _STATIC_TYPES:
        return Response(b"Not found\n", status=404)
    item = resources.files("unbounded.observe").joinpath("static", name)
    if not item.is_file():
        return Response(b"Not found\n", status=404)
    return Response(item.read_bytes(), _STATIC_TYPES[suffix])


def _page(title: str, kind: str, run_id: str) -> Response:
    import html  # with its entity table, ~1 ms: paid when a page is served, not at start

    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{STATIC_PATH}/ui.css">
</head>
<body data-page="{kind}" data-run-id="{html.escape(run_id, quote=True)}"
      data-api="{API_PATH}" data-query-path="{QUERY_PATH}" data-list-path="{LIST_PATH}">
<header><a href="{LIST_PATH}/" class="brand">unbounded</a>
<span class="tab">Structured Streaming</span><span id="updated"></span></header>
<main id="main"><p class="muted">Loading...</p></main>
<script src="{STATIC_PATH}/charts.js"></script>
<script src="{STATIC_PATH}/streaming.js"></script>
</body></html>
"""
    return Response(text.encode(), "text/html; charset=utf-8")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc, default=str).encode(), "application/json", status)


def _now_ms() -> int:
    return int(time.time() * 1000)
