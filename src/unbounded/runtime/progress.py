"""Progress reports: Spark's StreamingQueryProgress fields, read as attributes or keys.

PySpark 4 returns objects whose fields read as attributes (``p.batchId``) while older code
indexes them like dicts (``p["batchId"]``); ``Progress`` supports both.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Progress"]


class Progress(dict[str, Any]):
    """A progress record (or a nested part of one)."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__({k: _wrap(v) for k, v in data.items()})

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def json(self) -> str:  # type: ignore[override]
        return json.dumps(self, separators=(",", ":"), default=str)

    @property
    def prettyJson(self) -> str:
        return json.dumps(self, indent=2, default=str)

    def __str__(self) -> str:
        return self.prettyJson


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Progress):
        return Progress(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value
