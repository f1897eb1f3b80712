"""``Row``: PySpark's row (defined in ``unbounded.plan.row``, which the engine shares)."""

from __future__ import annotations

from unbounded.plan.row import Row, rows_from_arrow, values_from_arrow

__all__ = ["Row", "rows_from_arrow", "values_from_arrow"]
