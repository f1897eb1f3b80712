"""Engine builders of PySpark's collection functions (Polars expressions with Spark's
semantics), registered by name in ``engine.functions.FUNCTIONS`` when imported (the
import at the end of ``engine/functions.py`` does it)."""

from __future__ import annotations

__all__: list[str] = []
