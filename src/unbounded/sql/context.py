"""``spark.sparkContext``: the parts of PySpark's ``SparkContext`` streaming scripts touch.

There is no cluster behind it: ``setLogLevel`` sets the level of unbounded's loggers,
``defaultParallelism`` is the local executor's thread count, and ``uiWebUrl`` is the
session's HTTP server (metrics, UI) once it runs, else None.

>>> import logging
>>> sc = SparkContext({"spark.app.name": "demo"}.get)
>>> sc.setLogLevel("warn")
>>> logging.getLogger("unbounded").level == logging.WARNING
True
>>> sc.appName
'demo'
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable

__all__ = ["SparkContext"]

_LEVELS = {
    "ALL": logging.NOTSET + 1, "TRACE": logging.DEBUG, "DEBUG": logging.DEBUG,
    "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL, "OFF": logging.CRITICAL + 10,
}


class SparkContext:
    """Read-only facts about the local "application"; built by the session."""

    def __init__(self, conf: Callable[[str], str | None],
                 ui_url: Callable[[], str | None] = lambda: None) -> None:
        """``conf`` looks a setting up in the session's configuration (None if unset);
        ``ui_url`` tells where the session's HTTP server listens, if it runs."""
        self._conf = conf
        self._ui_url = ui_url
        self.applicationId = f"local-{uuid.uuid4().int % 10**13:013d}"

    @property
    def appName(self) -> str:
        return str(self._conf("spark.app.name") or "unbounded")

    @property
    def master(self) -> str:
        return str(self._conf("spark.master") or "local[*]")

    @property
    def defaultParallelism(self) -> int:
        """The number of tasks that run at once (the local executor's threads)."""
        threads = self._conf("unbounded.executor.threads")
        return int(threads) if threads else os.cpu_count() or 1

    @property
    def uiWebUrl(self) -> str | None:
        """``http://127.0.0.1:<port>`` of the session's HTTP server (e.g. with
        ``spark.sql.streaming.metricsEnabled=true``), None while none runs."""
        return self._ui_url()

    def setLogLevel(self, logLevel: str) -> None:
        """Set the level of unbounded's loggers, with Spark's level names (any case)."""
        level = _LEVELS.get(logLevel.upper())
        if level is None:
            raise ValueError(f"Supplied level {logLevel} did not match one of: "
                             f"{','.join(sorted(_LEVELS))}")
        logging.getLogger("unbounded").setLevel(level)

    def __repr__(self) -> str:
        return f"<SparkContext master={self.master} appName={self.appName}>"
