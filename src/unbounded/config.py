"""Settings unbounded reads, with Spark's names and defaults."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULTS", "load_plugin", "local_zone_id", "option_value"]


def local_zone_id() -> str:
    """The machine's time zone as the JVM finds it, Spark's default session zone: ``TZ``,
    else ``/etc/localtime``'s link into the zone database, else ``/etc/timezone``, else
    UTC."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        return env
    link = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in link:
        return link.split("zoneinfo/", 1)[1]
    try:
        with open("/etc/timezone", encoding="utf-8") as f:
            return f.read().strip() or "UTC"
    except OSError:
        return "UTC"


DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": str(os.cpu_count() or 2),
    "spark.sql.streaming.minBatchesToRetain": "100",
    "spark.sql.streaming.numRecentProgressUpdates": "100",
    "spark.sql.streaming.multipleWatermarkPolicy": "min",
    "spark.sql.streaming.stateStore.minDeltasForSnapshot": "10",
    "spark.sql.streaming.fileSink.log.compactInterval": "10",
    "spark.sql.session.timeZone": local_zone_id(),
    # ours: read batch N+1 while batch N's stateful stage and sink run (see microbatch.py)
    "spark.unbounded.streaming.pipelineBatches": "true",
}


def option_value(options: Mapping[str, str], key: str, default: str | None = None) -> str | None:
    """An option by name, matched case-insensitively as Spark matches option keys."""
    lowered = key.lower()
    for k, v in options.items():
        if k.lower() == lowered:
            return v
    return default


def load_plugin(table: Mapping[str, str], name: str, kind: str) -> Any:
    """The class registered as ``name`` ("module:Class") in ``table``."""
    from unbounded.errors import AnalysisException

    target = table.get(name.lower())
    if target is None:
        raise AnalysisException(
            f"[DATA_SOURCE_NOT_FOUND] Failed to find the {kind} {name!r}. "
            f"Supported formats: {', '.join(sorted(table))}.",
            error_class="DATA_SOURCE_NOT_FOUND",
        )
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)
