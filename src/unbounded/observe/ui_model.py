"""What the Structured Streaming pages show, as plain JSON documents.

A *query document* is one run of a query as the UI knows it; the session's board builds
it from the run's events, the status files under the run directory carry it between
processes, and ``tools.history`` builds one from a checkpoint. Its version-1 shape::

    {"version": 1, "id": "<query id>", "runId": "<run id>", "name": "counts",
     "status": "RUNNING" | "FINISHED" | "FAILED" | "EXITED" | "STOPPED",
     "startMs": 1700000000000, "endMs": null, "exception": null, "errorClass": null,
     "pid": 4242, "uiUrl": "http://127.0.0.1:4040", "source": "session" | "checkpoint",
     "batches": [<batch point>, ...]}

A *batch point* is the part of one ``StreamingQueryProgress`` the charts and the batch
table read (``batch_point``); the pages get both through ``query_summary`` and
``query_detail``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["DOCUMENT_VERSION", "STATUSES", "batch_point", "epoch_ms", "query_detail",
           "query_summary"]

DOCUMENT_VERSION = 1
# RUNNING/FINISHED/FAILED as Spark's tables; EXITED: the publishing process is gone while
# its query ran; STOPPED: a query read back from its checkpoint.
STATUSES = ("RUNNING", "FINISHED", "FAILED", "EXITED", "STOPPED")


def epoch_ms(iso: str | None) -> int | None:
    """An ISO-8601 timestamp (Spark's ``...Z`` form too) as epoch milliseconds.

    >>> epoch_ms("2023-11-14T22:13:20.123Z")
    1700000000123
    """
    if not iso:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def batch_point(progress: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one progress record that the pages chart and list."""
    timestamp = epoch_ms(progress.get("timestamp"))
    watermark = epoch_ms((progress.get("eventTime") or {}).get("watermark"))
    durations = progress.get("durationMs") or {}
    return {
        "batchId": progress.get("batchId"),
        "timestampMs": timestamp,
        "numInputRows": progress.get("numInputRows"),
        "inputRowsPerSecond": progress.get("inputRowsPerSecond"),
        "processedRowsPerSecond": progress.get("processedRowsPerSecond"),
        "batchDuration": progress.get("batchDuration"),
        "durationMs": {k: int(v) for k, v in durations.items()},
        "numOutputRows": (progress.get("sink") or {}).get("numOutputRows"),
        # Spark's "Global Watermark Gap": batch time minus watermark, once one is set
        "watermarkMs": watermark or None,  # 0: no watermark yet, as Spark's UI reads it
        "watermarkGapMs": None if not watermark or timestamp is None
        else timestamp - watermark,
        "stateOperators": [_operator_point(op) for op in progress.get("stateOperators", [])],
    }


def _operator_point(op: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("operatorName", "numRowsTotal", "numRowsUpdated", "memoryUsedBytes",
            "numRowsDroppedByWatermark")
    return {k: op.get(k) for k in keys}


def query_summary(doc: Mapping[str, Any], now_ms: int | None = None) -> dict[str, Any]:
    """One row of the queries table: who, state, since when, latest batch, rates, error.

    Rates are the averages over the retained batches, as Spark's "Avg Input /sec".
    """
    batches: Sequence[Mapping[str, Any]] = doc.get("batches") or []
    start, end = doc.get("startMs"), doc.get("endMs")
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    latest = batches[-1] if batches else None
    return {
        "id": doc.get("id"), "runId": doc.get("runId"), "name": doc.get("name"),
        "status": doc.get("status"), "startMs": start, "endMs": end,
        "durationMs": None if start is None else (end if end is not None else now) - start,
        "latestBatchId": None if latest is None else latest.get("batchId"),
        "avgInputRowsPerSecond": _mean(batches, "inputRowsPerSecond"),
        "avgProcessedRowsPerSecond": _mean(batches, "processedRowsPerSecond"),
        "lastError": _first_line(doc.get("exception")), "errorClass": doc.get("errorClass"),
        "pid": doc.get("pid"), "uiUrl": doc.get("uiUrl"), "source": doc.get("source"),
    }


def query_detail(doc: Mapping[str, Any], now_ms: int | None = None) -> dict[str, Any]:
    """A query's page: its summary, every retained batch point, the whole error text
    and (for a checkpoint) its state stores."""
    return {"query": query_summary(doc, now_ms), "batches": list(doc.get("batches") or []),
            "exception": doc.get("exception"), "operators": list(doc.get("operators") or []),
            "checkpoint": doc.get("checkpoint")}


def _mean(batches: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [float(b[key]) for b in batches if isinstance(b.get(key), int | float)]
    return sum(values) / len(values) if values else None


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # a traceback ends with the error itself; a message starts with it
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]
