"""PySpark's string functions (``pyspark.sql.functions``), re-exported by
``unbounded.sql.functions``; each compiles through the engine builder of the same name
in ``unbounded/engine/string_functions.py``."""

from __future__ import annotations

__all__: list[str] = []
