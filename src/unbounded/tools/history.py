"""A stopped query's history for ``unbounded ui``, read from its checkpoint.

The checkpoint keeps no row counts or durations (Spark's neither), so the document it
gives the pages (``observe.ui_model``'s version-1 shape, status ``STOPPED``) has, per
batch: its id, clock, watermark and the gap between them, whether it committed and its
offsets per source; and, per stateful operator, the state stores' latest version and
size on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

from unbounded.observe.ui_model import DOCUMENT_VERSION
from unbounded.tools.inspect import (
    BatchRecord,
    CheckpointReport,
    NotACheckpointError,
    OperatorRecord,
    inspect_checkpoint,
)

__all__ = ["checkpoint_document", "checkpoint_documents"]

log = logging.getLogger(__name__)


def checkpoint_document(checkpoint: str) -> dict[str, Any]:
    """The UI document of the query whose checkpoint is ``checkpoint``.

    Raises ``NotACheckpointError`` when the folder holds no query."""
    report = inspect_checkpoint(checkpoint)
    batches = [_point(b) for b in report.batches]
    times = [b.timestamp_ms for b in report.batches if b.timestamp_ms is not None]
    return {
        "version": DOCUMENT_VERSION, "id": report.query_id, "runId": _run_key(report),
        "name": os.path.basename(report.path.rstrip(os.sep)), "status": "STOPPED",
        "startMs": min(times, default=None), "endMs": max(times, default=None),
        "exception": _damage(report), "errorClass": None, "pid": None, "uiUrl": None,
        "source": "checkpoint", "checkpoint": report.path, "batches": batches,
        "operators": [_operator(op) for op in report.operators],
    }


def checkpoint_documents(checkpoints: list[str]) -> list[dict[str, Any]]:
    """One document per readable checkpoint; one that is gone is logged and left out."""
    docs = []
    for path in checkpoints:
        try:
            docs.append(checkpoint_document(path))
        except (NotACheckpointError, OSError) as error:
            log.warning("Cannot show %s: %s", path, error)
    return docs


def _run_key(report: CheckpointReport) -> str:
    # stable per folder, so a page's URL survives the viewer's restart
    return "checkpoint-" + hashlib.sha1(report.path.encode()).hexdigest()[:16]


def _point(batch: BatchRecord) -> dict[str, Any]:
    watermark = batch.watermark_ms or None
    gap = None if watermark is None or batch.timestamp_ms is None \
        else batch.timestamp_ms - watermark
    return {"batchId": batch.batch_id, "timestampMs": batch.timestamp_ms,
            "watermarkMs": watermark, "watermarkGapMs": gap, "committed": batch.committed,
            "offsets": batch.offsets, "stateOperators": []}


def _operator(op: OperatorRecord) -> dict[str, Any]:
    return {"operatorId": op.operator_id, "numPartitions": op.num_partitions,
            "stores": len(op.stores),
            "latestVersion": max((s.latest_version for s in op.stores), default=None),
            "sizeBytes": sum(s.size_bytes for s in op.stores)}


def _damage(report: CheckpointReport) -> str | None:
    broken = [f"batch {b.batch_id}: {b.error}" for b in report.batches if b.error]
    broken += [f"operator {op.operator_id}: {op.error}" for op in report.operators if op.error]
    return "Damaged checkpoint entries:\n" + "\n".join(broken) if broken else None
